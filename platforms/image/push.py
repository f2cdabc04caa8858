"""`platbench image push TARGET`: log in the way TARGET's registry wants, tag, push with progress per layer,
then read the manifest digest back from the registry and require it to be the one the push reported.

TARGET is a platform whose SPEC names an image login (PlatformSpec.image_login, in its cloud's package under
platforms/clouds: it turns the platform's credentials into a registry login) or a repository
HOST[:PORT]/PATH (credentials from the docker CLI's config, as `docker push` would use them).

Docker SDK: APIClient.tag, push(stream=True, decode=True, auth_config=…) — messages {"status", "id"
(a layer), "progressDetail"} then {"aux": {"Tag", "Digest", "Size"}}, or {"error"} — and
inspect_distribution (the registry's own descriptor of REPO:TAG, GET /distribution/{name}/json:
https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Distribution)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from platforms.errors import UserError

# HOST[:PORT]/PATH — a host has a dot or a port, or is localhost (the docker CLI's own rule for a registry
# host: https://docs.docker.com/reference/cli/docker/image/tag/#description)
REPOSITORY = re.compile(r"^(?P<host>(?:[a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(?::\d+)?|[a-zA-Z0-9.-]+:\d+|localhost)"
                        r"/(?P<path>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)$")


@dataclass
class Login:
    """Where to push and how to log in (a platform's registry.py returns one)."""

    repository: str                      # HOST[:PORT]/PATH, no tag
    username: Optional[str] = None       # None: whatever the docker CLI's config holds
    password: Optional[str] = field(default=None, repr=False)  # a short-lived token; never printed
    login_commands: tuple[str, ...] = ()  # the CLI equivalent, for --dry-run
    setting: str = "image_uri"           # the launcher's --set key that takes REPO@sha256:…

    @property
    def registry(self) -> str:
        return self.repository.split("/", 1)[0]

    def auth(self) -> Optional[dict]:
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password, "serveraddress": self.registry}


def repository_login(target: str) -> Login:
    """A plain repository HOST[:PORT]/PATH, or one line saying TARGET is neither that nor a platform."""
    if not REPOSITORY.match(target):
        return None
    return Login(repository=target, login_commands=(f"docker login {target.split('/', 1)[0]}   # if it needs credentials",))


def commands(login: Login, image: str, tag: str) -> list[str]:
    ref = f"{login.repository}:{tag}"
    return [*login.login_commands, f"docker tag {image} {ref}", f"docker push {ref}",
            f"docker manifest inspect --verbose {ref}   # the registry's digest"]


def push(client, image: str, login: Login, tag: str, on_layer: Callable[[str, str, dict], None]) -> str:
    """Push `image` as REPO:TAG; returns the manifest digest the registry holds for it."""
    from platforms.image.engine import errors

    auth = login.auth()
    client.tag(image, login.repository, tag=tag)
    pushed = None
    try:
        for msg in client.push(login.repository, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in msg:
                raise UserError(f"push to {login.repository}:{tag} failed: {msg['error'].strip()}")
            if msg.get("id") and msg.get("status"):
                on_layer(msg["id"], msg["status"], msg.get("progressDetail") or {})
            aux = msg.get("aux") or {}
            if aux.get("Digest"):
                pushed = aux["Digest"]
        described = client.inspect_distribution(f"{login.repository}:{tag}", auth_config=auth)
    except errors().APIError as exc:
        raise UserError(f"{login.registry}: {exc.explanation or exc}") from None
    remote = (described.get("Descriptor") or {}).get("digest")
    if not pushed or remote != pushed:
        raise UserError(f"{login.repository}:{tag}: the registry reports {remote or 'no digest'}, the push "
                        f"{pushed or 'none'}: not the image pushed")
    # and REPO@digest is this very image in the engine (its RepoDigests now name it)
    local = client.inspect_image(image)
    if f"{login.repository}@{remote}" not in (local.get("RepoDigests") or []):
        raise UserError(f"{login.repository}@{remote} is not {image} ({local['Id']}) in the local engine")
    return remote

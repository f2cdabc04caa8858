"""Google credentials for the loopback Vertex AI server, without Google: a service-account key file whose
`token_uri` is the server's own token route, and the check the server makes on every call's
`Authorization: Bearer` header.

- The key file is what `GOOGLE_APPLICATION_CREDENTIALS` names for Application Default Credentials; google-auth
  reads `client_email`, `private_key`, `private_key_id` and `token_uri` from it:
  https://cloud.google.com/docs/authentication/application-default-credentials
  https://cloud.google.com/iam/docs/keys-create-delete (the key file's fields)
- A bearer token is either a self-signed JWT (the GAPIC clients sign one with the key themselves: RS256, `iss`
  = `sub` = the service account, `kid` = the key id; https://google.aip.dev/auth/4111) or an access token the
  token route issued for a signed assertion (grant type urn:ietf:params:oauth:grant-type:jwt-bearer:
  https://developers.google.com/identity/protocols/oauth2/service-account#httprest).
- What a call without valid credentials gets: 401 UNAUTHENTICATED in Google's error JSON
  (https://cloud.google.com/apis/design/errors#http_mapping)."""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_KEY = None
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
MISSING = ("Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
           "other valid authentication credential.")
INVALID = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
           "valid authentication credential.")


class ServiceAccounts:
    """The keys this server knows, and the access tokens it has issued."""

    def __init__(self):
        self.public: dict[str, bytes] = {}     # key id → public key PEM
        self.emails: dict[str, str] = {}       # key id → service account
        self.tokens: dict[str, float] = {}     # access token → expiry (epoch seconds)

    def key_file(self, path: Path, token_uri: str, project: str = "p",
                 email: str = "platbench-test@p.iam.gserviceaccount.com", fresh: bool = False) -> Path:
        """A key file; the RSA key is made once per process unless `fresh` (a quarter second each)."""
        global _KEY
        if fresh or _KEY is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _KEY = _KEY or key
        else:
            key = _KEY
        kid = secrets.token_hex(20)
        self.public[kid] = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        self.emails[kid] = email
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        path.write_text(json.dumps({"type": "service_account", "project_id": project, "private_key_id": kid,
                                    "private_key": pem, "client_email": email, "client_id": "1",
                                    "token_uri": token_uri}))
        return path

    def _verify_jwt(self, token: str, audience: Optional[str] = None) -> Optional[dict]:
        from google.auth import _helpers, jwt

        try:
            header = json.loads(_helpers.padded_urlsafe_b64decode(token.split(".")[0]))
            claims = jwt.decode(token, certs=self.public, audience=audience)  # signature, iat, exp (and aud)
        except Exception:  # noqa: BLE001 - any undecodable or unsigned token is simply not valid
            return None
        if header.get("alg") != "RS256" or claims.get("iss") != self.emails.get(header.get("kid")):
            return None
        return claims

    def issue(self, assertion: str) -> Optional[dict]:
        """The token route: an access token for an assertion signed by a known key, addressed (`aud`) to
        Google's token endpoint, as the service-account flow documents it."""
        if self._verify_jwt(assertion, audience=GOOGLE_TOKEN_AUDIENCE) is None:
            return None
        token = "ya29." + secrets.token_urlsafe(32)
        self.tokens[token] = time.time() + 3600
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def refusal(self, authorization: Optional[str]) -> Optional[str]:
        """None when the header carries a valid bearer token, else the 401 message."""
        if not authorization or not authorization.startswith("Bearer "):
            return MISSING
        token = authorization[len("Bearer "):].strip()
        if self.tokens.get(token, 0) > time.time() or self._verify_jwt(token) is not None:
            return None
        return INVALID

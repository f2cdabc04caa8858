"""`platbench platforms`: for each registered platform, whether its SDK is installed (else the extra that
brings it), whether credentials are found on this machine, and what it lacks with why — like `sky check`,
but offline: nothing here makes a network call or imports a cloud SDK."""
from __future__ import annotations

from platforms.core import registry
from platforms.core.sdk import installed


def of(name: str) -> dict:
    spec = registry.spec(name)
    missing = [m for m in spec.sdk_modules if not installed(m)]
    if missing:
        sdk = f"missing ({', '.join(missing)}): pip install 'platbench[{spec.extra}]'"
    else:
        sdk = "installed" if spec.sdk_modules else "none needed"
    if spec.credentials:
        found, where = spec.load(spec.credentials)()
    else:
        found, where = True, "none needed"
    return {"platform": name, "title": spec.title, "sdk": sdk, "sdk_ok": not missing,
            "credentials": where, "credentials_ok": found, "guide": spec.guide, "kind": spec.kind.value,
            "not_measurable": spec.not_measurable,
            "lacks": {feature.value: why for feature, why in spec.lacks.items()}}


def text(rows: list[dict]) -> str:
    out = []
    for r in rows:
        ready = r["sdk_ok"] and r["credentials_ok"] and not r.get("not_measurable")
        kind = " (AutoML service: trains its own model on our images)" if r.get("kind") == "service" else ""
        out.append(f"{r['platform']}: {r['title']}{kind} — {'ready' if ready else 'not ready'}")
        if r.get("not_measurable"):
            out.append(f"  not measurable: {r['not_measurable']}")
        out.append(f"  SDK:         {r['sdk']}")
        out.append(f"  credentials: {'found: ' if r['credentials_ok'] and r['credentials'] != 'none needed' else ''}"
                   f"{r['credentials']}")
        if r["guide"]:
            out.append(f"  first run:   {r['guide']}")
        for feature, why in r["lacks"].items():
            out.append(f"  lacks {feature}: {why}")
    return "\n".join(out)

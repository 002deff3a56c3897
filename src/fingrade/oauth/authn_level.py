"""How strongly a customer authenticated: Authentication Method Reference values (RFC 8176) of what
they did, and the Authentication Context Class Reference (OIDC Core §2) they add up to.

Strong customer authentication (PSD2 Art. 4(30), RTS Art. 4) is two elements of different
categories: knowledge, possession, inherence. The amr values map to the categories below; a passkey
used with user verification (a fingerprint, a face, a device PIN) is possession and inherence (or
knowledge) in one gesture, so it is SCA on its own (docs/sca.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from fingrade.finance.authentication import ACR_PASSWORD as ACR_PASSWORD
from fingrade.finance.authentication import ACR_SCA as ACR_SCA

# Weakest first: a request for one is met by it or any after it.
ACR_VALUES = (ACR_PASSWORD, ACR_SCA)

# RFC 8176 §2 values that Fingrade issues.
PWD = "pwd"  # password (knowledge)
OTP = "otp"  # a one-time code: TOTP or a recovery code (possession)
HWK = "hwk"  # a passkey bound to one device (possession)
SWK = "swk"  # a passkey that may be synced (possession)
USER = "user"  # the authenticator verified the user (inherence, or a device PIN: knowledge)
MFA = "mfa"  # more than one factor

_CATEGORY = {PWD: "knowledge", OTP: "possession", HWK: "possession", SWK: "possession", USER: "inherence"}
_ORDER = (PWD, OTP, HWK, SWK, USER)


def is_strong(amr: Iterable[str]) -> bool:
    """Two elements of different categories (PSD2 RTS Art. 4)."""
    return len({_CATEGORY[m] for m in amr if m in _CATEGORY}) >= 2


def combine(*parts: Iterable[str]) -> list[str]:
    """The amr of methods used together: each value once, in a stable order, `mfa` when strong."""
    used = {m for part in parts for m in part if m in _CATEGORY}
    out = [m for m in _ORDER if m in used]
    return [*out, MFA] if is_strong(out) else out


def acr_for(amr: Iterable[str]) -> str:
    return ACR_SCA if is_strong(amr) else ACR_PASSWORD


def meets(acr: str, wanted: str) -> bool:
    """Whether `acr` satisfies a request for `wanted` (a known value at least as strong)."""
    if acr not in ACR_VALUES or wanted not in ACR_VALUES:
        return False
    return ACR_VALUES.index(acr) >= ACR_VALUES.index(wanted)

"""The authentication context classes (OIDC Core §2 `acr`) that the authorization server issues and
the bank checks before it executes a payment: one name for each on both sides."""

from __future__ import annotations

ACR_PASSWORD = "urn:fingrade:acr:password"  # one element: the password
# Strong customer authentication (PSD2 Art. 4(30), RTS Art. 4): two elements of different categories.
ACR_SCA = "urn:fingrade:acr:sca"

"""Protocol primitives any OAuth 2.0 party needs: errors, HTTP values, JOSE, DPoP, resource-server
token rules and the ASGI adapter. A leaf package: it imports nothing else from Fingrade."""

"""The protocol core: pure OAuth 2.0 / OpenID Connect rules over plain request and response values.

Nothing in this package imports the web framework, a database driver or :mod:`fingrade.store`;
stores are reached through the narrow ports the core owns, :mod:`fingrade.oauth.ports`.
"""

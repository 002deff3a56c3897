"""The protocol core: pure OAuth 2.0 / OpenID Connect rules over plain request and response values.

Nothing in this package imports the web framework or a database driver; stores are reached
through the small interfaces in :mod:`fingrade.store.interfaces`.
"""

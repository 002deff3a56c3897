"""Request parameter parsing (RFC 6749 §3.1, §3.2; WHATWG/RFC 3986 percent-encoding) and the
error type (RFC 6749 §5.2, §4.1.2.1)."""

from __future__ import annotations

import pytest

from fingrade.protocol.errors import OAuthError, invalid_client, method_not_allowed, safe_description
from fingrade.protocol.http import HttpRequest, form_params, parse_params


def refused(raw: bytes) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        parse_params(raw)
    return info.value


# -- parse_params ------------------------------------------------------------------------------


def test_form_decoding() -> None:
    assert parse_params(
        b"grant_type=authorization_code&redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fx%3D1"
        b"&scope=openid+profile&name=%C3%A9"
    ) == {
        "grant_type": "authorization_code",
        "redirect_uri": "https://a.example/cb?x=1",
        "scope": "openid profile",
        "name": "\u00e9",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"code=a&code=b",
        b"code=a&code=a",  # even identical values
        b"client_id=x&grant_type=y&client_id=x",
        b"code=a&c%6fde=b",  # the same name, percent-encoded
    ],
)
def test_repeated_parameter_refused_rfc6749_3_1(raw: bytes) -> None:
    err = refused(raw)
    assert (err.error, err.status) == ("invalid_request", 400)


def test_parameters_without_value_are_omitted_rfc6749_3_1() -> None:
    assert parse_params(b"code=&state=s&nonce") == {"state": "s"}


@pytest.mark.parametrize(
    "raw",
    [
        b"code=%zz",  # not two hex digits
        b"code=%",
        b"code=abc%4",
        b"co%g1de=x",
        b"code=%%41",
    ],
)
def test_bad_percent_encoding_refused(raw: bytes) -> None:
    # RFC 3986 §2.1: '%' must be followed by two hex digits; guessing what was meant lets
    # two components read one value differently (parameter confusion).
    err = refused(raw)
    assert (err.error, err.status) == ("invalid_request", 400)


@pytest.mark.parametrize(
    "raw",
    [
        b"code=\xff",  # raw bytes that are not UTF-8
        b"code=%ff",  # percent-encoded bytes that are not UTF-8
        b"code=%C3",  # truncated sequence
        b"c%C0%AFde=x",  # overlong encoding of '/'
        b"code=%ED%A0%80",  # UTF-16 surrogate
    ],
)
def test_bad_utf8_refused(raw: bytes) -> None:
    err = refused(raw)
    assert (err.error, err.status) == ("invalid_request", 400)


@pytest.mark.parametrize("raw", [b"code=a%00b", b"co%00de=x", b"code=\x00"])
def test_nul_refused(raw: bytes) -> None:
    assert refused(raw).error == "invalid_request"


def test_too_many_parameters_refused() -> None:
    raw = "&".join(f"p{i}=v" for i in range(200)).encode()
    assert refused(raw).error == "invalid_request"


def test_overlong_value_refused() -> None:
    assert refused(b"state=" + b"a" * 9000).error == "invalid_request"


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "multipart/form-data; boundary=x", ""])
def test_form_endpoints_need_the_form_media_type_rfc6749_3_2(ctype: str) -> None:
    request = HttpRequest("POST", "/token", {"content-type": ctype} if ctype else {}, body=b"grant_type=x")
    with pytest.raises(OAuthError) as info:
        form_params(request)
    assert info.value.error == "invalid_request"


def test_form_media_type_is_case_insensitive_with_parameters() -> None:
    request = HttpRequest(
        "POST", "/token", {"content-type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"}, body=b"grant_type=x"
    )
    assert form_params(request) == {"grant_type": "x"}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'say "hi"',
        "back\\slash",
        "cr\rlf\n",
        "tab\there",
        "caf\u00e9",
        "nul\x00",
        "del\x7f",
        "\u202eRLO",
    ],
)
def test_error_description_charset_rfc6749_5_2(text: str) -> None:
    # RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ).
    desc = OAuthError("invalid_request", text).description
    assert desc and all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in desc)
    assert safe_description(text) == desc


def test_error_description_keeps_allowed_text() -> None:
    text = "code_verifier does not match code_challenge (RFC 7636 4.6); see #x ~!$%&'()*+,-./:;<=>?@[]^_`{|}"
    assert OAuthError("invalid_grant", text).description == text


def test_error_body_and_debug_text_rfc6749_5_2() -> None:
    err = OAuthError("invalid_grant", "bad code", debug="row 42 of the operator log")
    assert err.body() == {"error": "invalid_grant", "error_description": "bad code"}
    assert "row 42" not in str(err.body())
    assert OAuthError("invalid_request").body() == {"error": "invalid_request"}  # no empty description


def test_invalid_client_is_401_with_challenge_rfc6749_5_2() -> None:
    err = invalid_client()
    assert err.status == 401 and err.headers["WWW-Authenticate"].startswith("Basic ")


def test_method_not_allowed_names_the_allowed_methods_rfc9110_15_5_6() -> None:
    err = method_not_allowed("POST")
    assert err.status == 405 and err.headers == {"Allow": "POST"}

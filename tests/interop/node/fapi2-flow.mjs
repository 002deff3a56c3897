// FAPI 2.0 Security Profile flow with openid-client (panva; certified as a FAPI 2.0 client):
// discovery -> PAR (private_key_jwt, DPoP proof, PKCE S256) -> the user's part (done by the caller) ->
// authorization code grant (private_key_jwt + DPoP) -> userinfo (DPoP) -> refresh (DPoP) ->
// introspection (private_key_jwt) -> two replays of DPoP proofs it already sent, which the server
// must refuse (RFC 9449 §11.1).
//
// Usage: node fapi2-flow.mjs ISSUER CLIENT_ID REDIRECT_URI [SCOPE]
//   OIDC_CLIENT_JWK (environment, never argv): the client's private signing key as a JWK with its kid,
//   the key registered for private_key_jwt. ES256/PS256/EdDSA keys are accepted.
//   The DPoP key pair is generated here (ES256); its public JWK and RFC 7638 thumbprint are printed.
//
// Protocol on stdio, one JSON object per line:
//   stdout: {"step": "authorize", "url": ..., "state": ..., "nonce": ..., "dpop_jwk": ..., "dpop_jkt": ...,
//            "server": <discovery document>, "log": [...]}
//   stdin:  the callback URL the browser was redirected to (one line)
//   stdout: {"step": "done", "tokens": ..., "claims": ..., "userinfo": ..., "refreshed": ...,
//            "introspection": ..., "replays": {...}, "log": [...]}
//   on failure: {"step": "error", "name": ..., "code": ..., "error": ..., "message": ..., "log": [...]}, exit 1.
// "log" lists every HTTP request openid-client made: method, URL, status, the client_assertion and
// DPoP proof it sent (decoded, unverified), and any DPoP-Nonce the server returned.

import * as client from 'openid-client'
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose'
import { createInterface } from 'node:readline'

const [issuerArg, clientIdArg, redirectArg, scopeArg] = process.argv.slice(2)
const issuer = issuerArg ?? process.env.OIDC_ISSUER
const clientId = clientIdArg ?? process.env.OIDC_CLIENT_ID
const redirectUri = redirectArg ?? process.env.OIDC_REDIRECT_URI
const scope = scopeArg ?? process.env.OIDC_SCOPE ?? 'openid profile accounts'

const log = []

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, log }) + '\n')
}

async function readLine() {
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) {
    rl.close()
    return line.trim()
  }
  throw new Error('stdin closed before the callback URL arrived')
}

function decode(jwt) {
  try {
    return { header: decodeProtectedHeader(jwt), claims: decodeJwt(jwt) }
  } catch {
    return null
  }
}

const IMPORT = {
  EC: { name: 'ECDSA', namedCurve: 'P-256' },
  RSA: { name: 'RSA-PSS', hash: 'SHA-256' },
  OKP: { name: 'Ed25519' },
}

async function importClientKey(jwk) {
  const { kid, use, alg, ...material } = jwk
  const algorithm = IMPORT[jwk.kty]
  if (!algorithm) throw new Error(`unsupported client key type ${jwk.kty}`)
  const key = await crypto.subtle.importKey('jwk', material, algorithm, false, ['sign'])
  return { key, kid }
}

// Every request goes through here: the log lets the test see what openid-client actually sent, and
// the last request to each endpoint is kept so that it can be replayed verbatim.
const sent = new Map()
let dpopOverride = null // when set, replaces the DPoP header of the next request (the replay test)

async function recordingFetch(url, options) {
  const headers = new Headers(options.headers)
  if (dpopOverride !== null) {
    headers.set('dpop', dpopOverride)
    dpopOverride = null
  }
  const opts = { ...options, headers: Object.fromEntries(headers.entries()) }
  const entry = { method: opts.method, url: String(url) }
  const body = typeof opts.body === 'string' ? new URLSearchParams(opts.body)
    : opts.body instanceof URLSearchParams ? opts.body : null
  if (body?.has('client_assertion')) entry.client_assertion = decode(body.get('client_assertion'))
  if (body?.has('dpop_jkt')) entry.dpop_jkt = body.get('dpop_jkt')
  const proof = headers.get('dpop')
  if (proof) entry.dpop = { ...decode(proof), raw: proof }
  const response = await fetch(url, opts)
  entry.status = response.status
  const nonce = response.headers.get('dpop-nonce')
  if (nonce) entry.dpop_nonce = nonce
  const challenge = response.headers.get('www-authenticate')
  if (challenge) entry.www_authenticate = challenge
  if (response.status >= 400) {
    const b = await response.clone().json().catch(() => ({}))
    entry.error = b.error
    entry.error_description = b.error_description
  }
  log.push(entry)
  sent.set(new URL(url).pathname, { url: String(url), opts })
  return response
}

function errorInfo(err) {
  return {
    name: err?.name,
    code: err?.code,
    error: err?.error,
    error_description: err?.error_description,
    status: err?.status,
    message: String(err?.message ?? err),
    cause: err?.cause ? String(err.cause?.message ?? err.cause) : undefined,
  }
}

async function main() {
  if (!issuer || !clientId || !redirectUri || !process.env.OIDC_CLIENT_JWK) {
    throw new Error('usage: OIDC_CLIENT_JWK=... node fapi2-flow.mjs ISSUER CLIENT_ID REDIRECT_URI [SCOPE]')
  }
  const clientKey = await importClientKey(JSON.parse(process.env.OIDC_CLIENT_JWK))
  // FAPI 2.0 SP 5.3.2.1-8: openid-client (oauth4webapi) sets the assertion's aud to the issuer
  // identifier, a single string, so no modifyAssertion option is needed.
  const config = await client.discovery(new URL(issuer), clientId, {
    token_endpoint_auth_method: 'private_key_jwt',
  }, client.PrivateKeyJwt(clientKey), { [client.customFetch]: recordingFetch })
  config[client.customFetch] = recordingFetch

  const dpopKeys = await client.randomDPoPKeyPair('ES256')
  const dpop = client.getDPoPHandle(config, dpopKeys)
  const dpopJwk = await crypto.subtle.exportKey('jwk', dpopKeys.publicKey)
  const dpopJkt = await calculateJwkThumbprint(dpopJwk, 'sha256')

  const codeVerifier = client.randomPKCECodeVerifier()
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
  const state = client.randomState()
  const nonce = client.randomNonce()
  // RFC 9126 §2 with the DPoP header at the PAR endpoint (RFC 9449 §10.1): the code is bound to the key.
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  }, { DPoP: dpop })
  emit({
    step: 'authorize', url: url.href, state, nonce, dpop_jwk: dpopJwk, dpop_jkt: dpopJkt,
    server: config.serverMetadata(),
  })

  const callback = new URL(await readLine())
  // Validates iss (RFC 9207; FAPI 2.0 SP 5.3.3.1-2: advertised, so required), state, then redeems the
  // code with private_key_jwt and a DPoP proof, and validates the ID token.
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  }, undefined, { DPoP: dpop })
  const claims = tokens.claims()
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP: dpop })
  const userinfoRequest = sent.get(new URL(config.serverMetadata().userinfo_endpoint).pathname)
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop })
  const tokenPath = new URL(config.serverMetadata().token_endpoint).pathname
  const refreshProof = sent.get(tokenPath).opts.headers.dpop
  const introspection = await client.tokenIntrospection(config, refreshed.access_token)

  // RFC 9449 §11.1: a proof is good once. (1) The userinfo request sent again, byte for byte.
  const again = await recordingFetch(userinfoRequest.url, userinfoRequest.opts)
  const replays = {
    userinfo: { status: again.status, www_authenticate: again.headers.get('www-authenticate') },
    token_proof: refreshProof,
  }
  // (2) A refresh with a fresh client assertion but the DPoP proof of the earlier refresh.
  dpopOverride = refreshProof
  try {
    const r = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop })
    replays.token = { accepted: true, token_type: r.token_type }
  } catch (err) {
    replays.token = errorInfo(err)
  }
  emit({
    step: 'done',
    tokens: { ...tokens },
    claims,
    userinfo,
    refreshed: { ...refreshed },
    introspection: { ...introspection },
    replays,
  })
}

main().catch((err) => {
  emit({ step: 'error', ...errorInfo(err) })
  process.exit(1)
})

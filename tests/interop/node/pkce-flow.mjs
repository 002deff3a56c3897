// Authorization code + PKCE flow with openid-client (panva), a client nobody on this project wrote.
//
// Usage: node pkce-flow.mjs ISSUER CLIENT_ID REDIRECT_URI [SCOPE]
//   (or OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_REDIRECT_URI, OIDC_SCOPE in the environment).
//   OIDC_CLIENT_SECRET in the environment makes it a confidential client (client_secret_basic);
//   without it the client is public (token_endpoint_auth_method "none").
//   OIDC_PROMPT, if set, is sent as the prompt parameter (e.g. "consent").
//   OIDC_ACR_VALUES, if set, is sent as acr_values (OIDC Core §3.1.2.1).
//   The secret is read from the environment only, so that it never shows in a process listing.
//
// Protocol on stdio, one JSON object per line:
//   stdout: {"step": "authorize", "url": ..., "state": ..., "nonce": ...}
//   stdin:  the callback URL the browser was redirected to (one line)
//   stdout: {"step": "done", "tokens": ..., "claims": ..., "userinfo": ..., "refreshed": ...}
//   on failure: {"step": "error", "name": ..., "code": ..., "error": ..., "message": ...} and exit 1.
// A server with a self-signed certificate is trusted through NODE_EXTRA_CA_CERTS.

import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const [issuerArg, clientIdArg, redirectArg, scopeArg] = process.argv.slice(2)
const issuer = issuerArg ?? process.env.OIDC_ISSUER
const clientId = clientIdArg ?? process.env.OIDC_CLIENT_ID
const redirectUri = redirectArg ?? process.env.OIDC_REDIRECT_URI
const scope = scopeArg ?? process.env.OIDC_SCOPE ?? 'openid profile email offline_access'
const clientSecret = process.env.OIDC_CLIENT_SECRET
const prompt = process.env.OIDC_PROMPT
const acrValues = process.env.OIDC_ACR_VALUES

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function readLine() {
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) {
    rl.close()
    return line.trim()
  }
  throw new Error('stdin closed before the callback URL arrived')
}

async function main() {
  if (!issuer || !clientId || !redirectUri) {
    throw new Error('usage: node pkce-flow.mjs ISSUER CLIENT_ID REDIRECT_URI [SCOPE]')
  }
  // openid-client defaults to client_secret_post when given a bare secret; the server enforces the
  // registered method, so the method is named explicitly.
  const auth = clientSecret ? client.ClientSecretBasic(clientSecret) : client.None()
  const metadata = clientSecret ? { client_secret: clientSecret } : { token_endpoint_auth_method: 'none' }
  const config = await client.discovery(new URL(issuer), clientId, metadata, auth)

  const codeVerifier = client.randomPKCECodeVerifier()
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
  const state = client.randomState()
  const nonce = client.randomNonce()
  const params = {
    redirect_uri: redirectUri,
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  }
  if (prompt) params.prompt = prompt
  if (acrValues) params.acr_values = acrValues
  const url = client.buildAuthorizationUrl(config, params)
  emit({ step: 'authorize', url: url.href, state, nonce, server: config.serverMetadata() })

  const callback = new URL(await readLine())
  // Validates state, iss (RFC 9207, advertised by authorization_response_iss_parameter_supported),
  // then redeems the code with the verifier and validates the ID token (signature, iss, aud, nonce, ...).
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  emit({
    step: 'done',
    tokens: { ...tokens },
    claims,
    userinfo,
    refreshed: { ...refreshed },
    refreshed_claims: refreshed.id_token ? refreshed.claims() : null,
  })
}

main().catch((err) => {
  emit({
    step: 'error',
    name: err?.name,
    code: err?.code,
    error: err?.error,
    error_description: err?.error_description,
    status: err?.status,
    message: String(err?.message ?? err),
    cause: err?.cause ? String(err.cause?.message ?? err.cause) : undefined,
  })
  process.exit(1)
})

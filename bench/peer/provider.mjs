// node-oidc-provider configured for FAPI 2.0 as a deployment would run it: the peer in Fingrade's
// side-by-side benchmark (bench/side_by_side.py, bench/README.md).
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json (written by bench/side_by_side.py): issuer, host, port, optional tls {cert, key},
// users {name: claims}, password, clients (client metadata, public JWKS included), verified_native
// (native apps the operator vouches for), resource_servers (clients that may introspect),
// access_token_format ("opaque", the library's default, or "jwt").
//
// In-memory adapter (the library's default), no development interactions: the only interaction
// is a small password login, which the benchmark runs once per connection before it measures.

import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import Provider, { errors, interactionPolicy } from 'oidc-provider';
import { setStorage } from 'oidc-provider/lib/adapters/memory_adapter.js';
import QuickLRU from 'quick-lru';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// The library's in-memory adapter, with room for a whole benchmark. Its own store keeps 1,000
// entries (least recently used first out): at thousands of tokens per second that is under a
// second, so the returning users' sessions and grants would be evicted between two of their flows.
setStorage(new QuickLRU({ maxSize: 1_000_000 }));
const verifiedNative = new Set(config.verified_native ?? []);
const resourceServers = new Set(config.resource_servers ?? []);
const benchClients = new Set(config.clients.map((c) => c.client_id));

// The signing key: one ES256 key generated at start, as Fingrade signs with ES256.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }), kid: 'peer-es256', alg: 'ES256', use: 'sig',
};

// Consent policy: the library asks a native app's user to confirm every authorization (RFC 8252
// §8.6). Here the operator vouches for the bench's native app (verified_native), as Fingrade's bench
// verifies demo-native, so its returning user goes straight back with a code like any other client's.
const policy = interactionPolicy.base();
const consent = policy.get('consent');
const nativePrompt = consent.checks.get('native_client_prompt');
const nativeAt = consent.checks.indexOf(nativePrompt);
consent.checks.remove('native_client_prompt');
consent.checks.add(new interactionPolicy.Check(
  'native_client_prompt',
  'native clients require End-User interaction',
  'interaction_required',
  (ctx) => (verifiedNative.has(ctx.oidc.client.clientId)
    ? interactionPolicy.Check.NO_NEED_TO_PROMPT
    : nativePrompt.check(ctx)),
), nativeAt);

const jwtAccessTokens = config.access_token_format === 'jwt';
const API = `${config.issuer}/api`; // the resource indicator of JWT access tokens (jwt mode only)

const provider = new Provider(config.issuer, {
  clients: config.clients,
  clientDefaults: {
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'ES256',
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'accounts', 'payments'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name'],
    email: ['email', 'email_verified'],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // Like Fingrade's --resource-server clients: only resource servers (or the token's own client).
      async allowedPolicy(ctx, client, token) {
        return resourceServers.has(client.clientId) || token.clientId === client.clientId;
      },
    },
    dPoP: { enabled: true },
    pushedAuthorizationRequests: { enabled: true },
    fapi: {
      enabled: true,
      // FAPI 2.0 for the FAPI client; the others are plain OAuth/OIDC clients, as in Fingrade.
      profile(ctx, client) {
        return client?.dpopBoundAccessTokens ? '2.0' : undefined;
      },
    },
    userinfo: { enabled: true },
    revocation: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // jwt mode: client_credentials tokens are ES256 JWTs for the API (Fingrade's format). The
      // default (opaque) issues the library's default tokens: a random value and a stored record.
      async defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        return jwtAccessTokens && ctx.oidc.params.grant_type === 'client_credentials' ? API : undefined;
      },
      async getResourceServerInfo(ctx, indicator) {
        if (!jwtAccessTokens || indicator !== API) throw new errors.InvalidTarget();
        return {
          scope: 'accounts payments',
          audience: config.issuer,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  // PKCE S256 for every client (the library's default policy; FAPI 2.0 requires it).
  pkce: { methods: ['S256'], required: () => true },
  // Lifetimes as Fingrade's defaults.
  ttl: {
    AccessToken: 300,
    AuthorizationCode: 60,
    ClientCredentials: 300,
    IdToken: 300,
    Interaction: 600,
    Session: 8 * 3600,
    Grant: 30 * 86400,
  },
  interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const claims = config.users[sub];
    if (!claims) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...claims }) };
  },
  // Consent remembered: a signed-in user's grant for a bench client is established once (the
  // first authorization) and found through the session afterwards, as a returning user's would be.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (!benchClients.has(ctx.oidc.client.clientId)) return undefined;
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.client.scope);
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = out;
  },
});

// -- the login interaction (set-up only: never in a measured path) ------------------------------

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 16384) reject(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const expected = Buffer.from(config.password);
function passwordMatches(given) {
  const g = Buffer.from(given ?? '');
  return g.length === expected.length && crypto.timingSafeEqual(g, expected);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt } = details;
  if (req.method === 'GET' && prompt.name === 'login') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(`<!doctype html><form method="post" action="/interaction/${uid}/login">`
      + '<input name="username"><input name="password" type="password"><button>Sign in</button></form>');
    return;
  }
  if (req.method === 'POST' && req.url.endsWith('/login') && prompt.name === 'login') {
    const form = new URLSearchParams(await readBody(req));
    const username = form.get('username');
    if (!config.users[username] || !passwordMatches(form.get('password'))) {
      res.writeHead(401, { 'Content-Type': 'text/plain' });
      res.end('wrong username or password');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(400, { 'Content-Type': 'text/plain' });
  res.end(`unexpected interaction: ${req.method} ${prompt.name}`);
}

const callback = provider.callback();
function handler(req, res) {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(err));
    });
    return;
  }
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  callback(req, res);
}

const server = config.tls
  ? https.createServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 5000; // Fingrade's http_keep_alive_timeout
server.listen(config.port, config.host, () => {
  process.stdout.write(`peer listening on ${config.host}:${config.port}, issuer ${config.issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

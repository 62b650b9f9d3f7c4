// An independent OpenID provider for tests/test_oidc.py: panva's oidc-provider (OpenID
// Certified), configured here and nothing else. Usage:
//   node provider.mjs PORT ACCOUNTS.json CLIENT_ID CLIENT_SECRET REDIRECT_BASE
// It listens on 127.0.0.1:PORT with the issuer http://127.0.0.1:PORT. The accounts' claims are
// read from ACCOUNTS.json ({"sub": {"email": ..., "name": ..., "org": ..., "roles": [...]}})
// at every sign-in, so a test changes someone's roles by rewriting the file. Its own login page
// (devInteractions) signs in whoever's "sub" is typed, with any password.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, accountsFile, clientId, clientSecret, redirectBase] = process.argv.slice(2);
if (!port || !accountsFile || !clientId || !clientSecret || !redirectBase) {
  console.error('usage: node provider.mjs PORT ACCOUNTS.json CLIENT_ID CLIENT_SECRET REDIRECT_BASE');
  process.exit(2);
}

const accounts = () => JSON.parse(readFileSync(accountsFile, 'utf8'));

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [`${redirectBase}/web/oidc/callback`],
    post_logout_redirect_uris: [`${redirectBase}/web/sign-in`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // PKCE for every client, confidential ones too (the default asks it of public clients only).
  pkce: { required: () => true },
  // The organization and roles as claims of the ID token itself (as Keycloak's mappers and
  // Entra's app roles put them); with CLAIMS_AT_USERINFO=1, only at the userinfo endpoint (the
  // specification's default for the code flow, which some providers follow).
  conformIdTokenClaims: process.env.CLAIMS_AT_USERINFO === '1',
  claims: {
    openid: ['sub', 'org', 'roles'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  async findAccount(ctx, sub) {
    const found = accounts()[sub];
    if (!found) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, email_verified: true, ...found };
      },
    };
  },
  cookies: { keys: ['a test provider, never deployed'] },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});

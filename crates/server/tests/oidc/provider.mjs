// A real, certified OpenID Connect provider (npm's `oidc-provider`, pinned and installed by
// scripts/setup-clients.sh) for Goodhart's single sign-on tests: it listens on a random loopback
// port, registers one confidential client for the redirect URL given, and knows six people
// whose `groups` claim the tests map to roles. Its development interactions give a login form
// (any password) and a consent form.
//
// Usage: node provider.mjs <redirect_url> <client_secret> <node_modules dir>; prints
// `listening <port>` once ready.
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [redirectUrl, clientSecret, modules] = process.argv.slice(2);
if (!redirectUrl || !clientSecret || !modules) {
  console.error('usage: node provider.mjs <redirect_url> <client_secret> <node_modules dir>');
  process.exit(2);
}
const { default: Provider } = await import(pathToFileURL(path.join(modules, 'oidc-provider', 'lib', 'index.js')).href);

const people = {
  alice: { email: 'alice@example.com', name: 'Alice Admin', groups: ['goodhart-admins', 'team-payments'] },
  victor: { email: 'victor@example.com', name: 'Victor Viewer', groups: ['finance'] },
  tess: { email: 'tess@example.com', name: 'Tess Team', groups: ['team-search', 'team-payments'] },
  mallory: { email: 'mallory@example.com', name: 'Mallory', groups: ['contractors'] },
  mona: { email: 'mona@example.com', name: 'Mona Manager', groups: ['leads-payments'] },
  eddie: { email: 'eddie@example.com', name: 'Eddie Engineer', groups: ['engineers'] },
};

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [{
      client_id: 'goodhart',
      client_secret: clientSecret,
      redirect_uris: [redirectUrl],
      // RP-initiated logout returns to Goodhart's public URL (its default post_logout_redirect_url).
      post_logout_redirect_uris: [new URL('/', redirectUrl).href],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    }],
    claims: { openid: ['sub'], email: ['email'], profile: ['name'], groups: ['groups'] },
    // The claims of the scopes asked for go in the ID token (Goodhart reads groups from it).
    conformIdTokenClaims: false,
    cookies: { keys: ['goodhart-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, sub) {
      const person = people[sub];
      if (!person) return undefined;
      return { accountId: sub, async claims() { return { sub, ...person }; } };
    },
  });
  server.on('request', provider.callback());
  console.log(`listening ${port}`);
});

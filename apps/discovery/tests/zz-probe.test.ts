import { Lifecycle } from '@berth/core';
import { makeCoreDeps } from '@berth/testing';
import { createSigner } from 'fast-jwt';
import { Registry } from 'prom-client';
import { buildDiscoveryApp } from '../src/app.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const admin = createSigner({ key: SECRET, algorithm: 'HS256' })({ client: 'admin', sub: 'root', role: 'admin' });

it('probe', async () => {
  const deps = makeCoreDeps();
  const app = await buildDiscoveryApp({ lifecycle: new Lifecycle(deps), store: deps.store, queues: deps.queues, publisher: deps.publisher, authSecret: SECRET, cacheTtlMs: 0, registry: new Registry(), rateLimitPerMinute: 1000 });
  const auth = { authorization: `Bearer ${admin}` };
  const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}`;
  const cases: [string, string, unknown?, Record<string,string>?][] = [
    ['GET', '/v1/containers/%E0%A4%A'],
    ['GET', '/v1/containers/%'],
    ['GET', `/v1/containers/${long}`],
    ['GET', `/v1/sessions/${'s'.repeat(120)}`],
    ['GET', '/v1/containers/..'],
    ['GET', '/v1/containers/%2e%2e'],
    ['GET', '/v1/containers/a%2Fb.c.d'],
    ['GET', '/v1/containers/a%00.b.c'],
    ['GET', '/v1/containers/ä.b.c'],
    ['GET', '/v1/containers/../containers'],
    ['GET', '/v1/sessions/..'],
    ['GET', '/v1/containers?__proto__=x'],
    ['GET', '/v1/containers?clientId=a&clientId=b'],
    ['GET', '/v1/containers?limit=5&cursor=' + Buffer.from('{"containerId":{"N":"1"}}').toString('base64url')],
    ['GET', '/v1/containers?cursor=' + Buffer.from('{"containerId":"x"}').toString('base64url')],
    ['GET', '/v1/containers?cursor=' + Buffer.from('[1,2]').toString('base64url')],
    ['GET', '/v1/containers?constructor=x'],
    ['GET', '/v1/containers?%=1'],
    ['GET', '/v1/containers?a=%E0%A4%A'],
    ['POST', '/v1/containers/discover', '{"__proto__":{"x":1},"clientId":"a","projectId":"b","userId":"c"}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', '{"constructor":{"prototype":{"x":1}},"clientId":"a","projectId":"b","userId":"c"}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', '{"x":' + '['.repeat(5000) + ']'.repeat(5000) + '}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', '['.repeat(7000) + ']'.repeat(7000), {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', '{"clientId":"a","projectId":"b","userId":"c"}', {'content-type':'application/json; charset=utf-16'}],
    ['POST', '/v1/containers/discover', '{"clientId":"a","projectId":"b","userId":"c"}', {'content-type':'application/vnd.api+json'}],
    ['POST', '/v1/containers/discover', '{"clientId":"a","projectId":"b","userId":"c"}', {}],
    ['POST', '/v1/containers/discover', '', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', 'null', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', '"x"', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover', '[]', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover?wait=1&wait=2', '{"clientId":"a","projectId":"b","userId":"c"}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/discover?wait=', '{"clientId":"a","projectId":"b","userId":"c"}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/a.b.c/stop', '', {'content-type':'application/json'}],
    ['POST', '/v1/containers/a.b.c/stop', 'null', {'content-type':'application/json'}],
    ['POST', '/v1/containers/a.b.c/stop', '{"reason":5}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/a.b.c/stop', undefined, {}],
    ['POST', '/v1/containers/x.y.z/stop', '{}', {'content-type':'application/json'}],
    ['POST', '/v1/containers/x.y.z/stop', '{}', {'content-type':'multipart/form-data; boundary=x'}],
    ['DELETE', '/v1/containers/a.b.c'],
    ['PROPFIND', '/v1/containers/a.b.c'],
    ['HEAD', '/v1/containers/a.b.c'],
    ['OPTIONS', '/v1/containers'],
    ['GET', '/v1/containers/a.b.c/sessions/../../..'],
    ['GET', '//v1//containers'],
    ['GET', '/v1/containers/discover'],
    ['GET', '/' + 'x'.repeat(100000)],
    ['GET', '/v1/containers/' + 'x'.repeat(100000)],
    ['GET', '/v1/containers?' + 'a=1&'.repeat(5000)],
    ['GET', '/v1/containers?limit=1;status=running'],
    ['GET', '/v1/containers?status=toString'],
  ];
  for (const [method, url, payload, headers] of cases) {
    const r = await app.inject({ method: method as 'GET', url, headers: { ...auth, ...(headers ?? {}) }, ...(payload !== undefined ? { payload: payload as string } : {}) });
    console.log(method, url.slice(0, 90), r.statusCode, r.body.slice(0, 300));
  }
  await app.close();
});

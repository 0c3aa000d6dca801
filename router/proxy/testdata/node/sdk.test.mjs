// Runs the official OpenAI Node SDK against a live autorouter proxy.
// TestOpenAINodeSDK starts the proxy and sets AUTOROUTER_BASE_URL and
// AUTOROUTER_KEY; run it with `node --test sdk.test.mjs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.AUTOROUTER_BASE_URL;
const apiKey = process.env.AUTOROUTER_KEY;
assert.ok(baseURL && apiKey, 'AUTOROUTER_BASE_URL and AUTOROUTER_KEY must be set');
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

test('chat.completions.create routes a coding prompt to the coder model', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: 'write a python function that reverses a linked list' }] })
    .withResponse();
  assert.equal(response.headers.get('x-autorouter-route'), 'coder');
  assert.equal(response.headers.get('x-autorouter-model'), 'coder');
  assert.equal(data.model, 'coder');
  assert.match(data.choices[0].message.content, /mock coder/);
});

test('streaming chat.completions.create routes a poem to the writer model', async () => {
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'compose a haiku about autumn leaves' }] })
    .withResponse();
  assert.equal(response.headers.get('x-autorouter-model'), 'writer');
  let text = '';
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.model, 'writer');
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.ok(chunks > 2, `expected several chunks, got ${chunks}`);
  assert.match(text, /mock writer/);
});

test('off-topic prompt falls back to the default model', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: 'what time does the bakery on main street open' }] })
    .withResponse();
  assert.equal(response.headers.get('x-autorouter-route'), 'default');
  assert.equal(data.model, 'general');
});

test('embeddings.create on the local model', async () => {
  const res = await client.embeddings.create({ model: 'minilm', input: ['hello world', 'goodbye'] });
  assert.equal(res.data.length, 2);
  assert.equal(res.data[0].embedding.length, 384);
  const norm = Math.sqrt(res.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, `embedding norm ${norm}`);
});

test('models.list includes the auto router', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const id of ['auto', 'coder', 'writer', 'general', 'minilm']) assert.ok(ids.includes(id), `${id} missing from ${ids}`);
});

test('a wrong key surfaces as AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(
    bad.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
    (err) => err instanceof OpenAI.AuthenticationError && err.status === 401,
  );
});

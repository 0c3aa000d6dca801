// Runs today's popular clients against a live autorouter proxy: the OpenAI
// Node SDK's Responses API, the Vercel AI SDK's default OpenAI provider
// (which calls /v1/responses) and the Anthropic SDK's Messages API, each
// plain, streamed and with a function tool round trip. TestAPIClients starts
// the proxy (once over mock upstreams, once over an upstream that speaks
// only chat completions) and sets AUTOROUTER_BASE_URL, AUTOROUTER_KEY and
// AUTOROUTER_CODER (the model group the coding route goes to).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText, tool, jsonSchema, stepCountIs } from 'ai';

const baseURL = process.env.AUTOROUTER_BASE_URL; // .../v1
const apiKey = process.env.AUTOROUTER_KEY;
const coder = process.env.AUTOROUTER_CODER;
assert.ok(baseURL && apiKey && coder, 'AUTOROUTER_BASE_URL, AUTOROUTER_KEY and AUTOROUTER_CODER must be set');

const openai = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: baseURL.replace(/\/v1$/, ''), apiKey, maxRetries: 0 });
const aisdk = createOpenAI({ baseURL, apiKey });

const codingPrompt = 'write a python function that reverses a linked list';
const poemPrompt = 'compose a haiku about autumn leaves';
const weatherTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: true,
};

test('openai responses.create is routed and answered', async () => {
  const { data, response } = await openai.responses.create({ model: 'auto', input: codingPrompt }).withResponse();
  assert.equal(response.headers.get('x-autorouter-route'), 'coder');
  assert.equal(response.headers.get('x-autorouter-model'), coder);
  assert.equal(data.object, 'response');
  assert.equal(data.status, 'completed');
  assert.ok(data.output_text.length > 0, 'output_text is empty');
  assert.ok(data.usage.output_tokens > 0);
});

test('openai responses.create streams event by event', async () => {
  const { data: stream, response } = await openai.responses
    .create({ model: 'auto', input: [{ role: 'user', content: [{ type: 'input_text', text: poemPrompt }] }], stream: true })
    .withResponse();
  assert.equal(response.headers.get('x-autorouter-route'), 'writer');
  const types = [];
  let text = '';
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'response.output_text.delta') text += ev.delta;
  }
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  assert.ok(types.filter((t) => t === 'response.output_text.delta').length > 1, 'expected several text deltas');
  assert.ok(text.length > 0);
});

test('openai responses function tool round trip', async () => {
  const first = await openai.responses.create({ model: 'auto', input: codingPrompt, tools: [weatherTool] });
  const call = first.output.find((o) => o.type === 'function_call');
  assert.ok(call, `no function_call in ${JSON.stringify(first.output)}`);
  assert.equal(call.name, 'get_weather');
  const args = JSON.parse(call.arguments);
  assert.equal(typeof args.city, 'string');
  const second = await openai.responses.create({
    model: 'auto',
    tools: [weatherTool],
    input: [
      { role: 'user', content: codingPrompt },
      { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 21}' },
    ],
  });
  assert.equal(second.status, 'completed');
  assert.ok(second.output_text.length > 0, 'no answer after the tool result');
});

test('openai responses rejects what cannot be translated', async (t) => {
  if (process.env.AUTOROUTER_NATIVE_RESPONSES) return t.skip('this upstream serves the Responses API itself');
  await assert.rejects(
    openai.responses.create({ model: 'auto', input: codingPrompt, tools: [{ type: 'web_search' }] }),
    (err) => err instanceof OpenAI.BadRequestError && /web_search/.test(err.message),
  );
});

test('AI SDK generateText through the default (Responses) provider', async () => {
  const res = await generateText({ model: aisdk('auto'), prompt: codingPrompt });
  assert.ok(res.text.length > 0);
  assert.equal(res.response.headers['x-autorouter-route'], 'coder');
  assert.ok(res.usage.outputTokens > 0);
});

test('AI SDK streamText through the default (Responses) provider', async () => {
  const res = streamText({ model: aisdk('auto'), prompt: poemPrompt });
  let text = '';
  for await (const part of res.textStream) text += part;
  assert.ok(text.length > 0);
  const response = await res.response;
  assert.equal(response.headers['x-autorouter-route'], 'writer');
});

test('AI SDK tool round trip', async () => {
  let called = 0;
  const res = await generateText({
    model: aisdk('auto'),
    prompt: codingPrompt,
    tools: {
      get_weather: tool({
        description: 'Current weather for a city',
        inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
        execute: async ({ city }) => {
          called++;
          return { city, temperature: 21 };
        },
      }),
    },
    stopWhen: stepCountIs(3),
  });
  assert.equal(called, 1, 'the tool was not called once');
  assert.ok(res.text.length > 0, 'no answer after the tool result');
});

test('anthropic messages.create is routed and answered', async () => {
  const { data, response } = await anthropic.messages
    .create({ model: 'auto', max_tokens: 256, system: 'Be brief.', messages: [{ role: 'user', content: codingPrompt }] })
    .withResponse();
  assert.equal(response.headers.get('x-autorouter-route'), 'coder');
  assert.equal(response.headers.get('x-autorouter-model'), coder);
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.equal(data.content[0].type, 'text');
  assert.ok(data.content[0].text.length > 0);
  assert.equal(data.stop_reason, 'end_turn');
});

test('anthropic messages.stream yields the event sequence', async () => {
  const stream = anthropic.messages.stream({
    model: 'auto',
    max_tokens: 256,
    messages: [{ role: 'user', content: [{ type: 'text', text: poemPrompt }] }],
  });
  const types = [];
  let text = '';
  stream.on('streamEvent', (ev) => types.push(ev.type));
  stream.on('text', (t) => (text += t));
  const final = await stream.finalMessage();
  assert.equal(types[0], 'message_start');
  assert.ok(types.includes('content_block_delta'));
  assert.equal(types.at(-1), 'message_stop');
  assert.ok(text.length > 0);
  assert.equal(final.stop_reason, 'end_turn');
});

test('anthropic tool round trip', async () => {
  const tools = [{ name: 'get_weather', description: 'Current weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const first = await anthropic.messages.create({ model: 'auto', max_tokens: 256, tools, messages: [{ role: 'user', content: codingPrompt }] });
  assert.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((b) => b.type === 'tool_use');
  assert.ok(use, `no tool_use in ${JSON.stringify(first.content)}`);
  assert.equal(typeof use.input.city, 'string');
  const second = await anthropic.messages.create({
    model: 'auto',
    max_tokens: 256,
    tools,
    messages: [
      { role: 'user', content: codingPrompt },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temperature": 21}' }] },
    ],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.ok(second.content.some((b) => b.type === 'text' && b.text.length > 0));
});

test('anthropic errors use its envelope and x-api-key auth', async () => {
  const bad = new Anthropic({ baseURL: baseURL.replace(/\/v1$/, ''), apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(
    bad.messages.create({ model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    (err) => err instanceof Anthropic.AuthenticationError && err.status === 401,
  );
});

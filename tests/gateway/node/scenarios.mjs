// statefold's gateway through the official OpenAI Node SDK (npm `openai`, pinned in package.json), used the way its
// users write it: a client with the session in its default headers, `for await` over streams, the
// `chat.completions.runTools` helper and cookbook loops that push every message onto one `messages` array and send
// the whole array each turn, `responses.create` chained by `previous_response_id`, `Idempotency-Key` and the SDK's
// own retries.
//
//   node scenarios.mjs NAME       with STATEFOLD_URL (the gateway, http://127.0.0.1:PORT), SCENARIO_ARGS (JSON: the
//                                 session ids and whatever the scenario takes), STATEFOLD_CLIENT_KEY
//
// Each scenario prints one JSON object on stdout: what the client saw (texts, ids, usage, headers, the SDK's error
// classes). tests/gateway/test_node_sdk.py scripts the fake upstream before it runs, then checks that output against
// what the fake received and what the session recorded. The scripts assert nothing themselves, except that a call
// expected to fail did fail (it prints the error it got; an unexpected exception exits non-zero with its stack).

import OpenAI from 'openai';

const baseURL = `${process.env.STATEFOLD_URL}/v1`;
const apiKey = process.env.STATEFOLD_CLIENT_KEY || 'sk-node-client';
const args = JSON.parse(process.env.SCENARIO_ARGS || '{}');

// A client as a user makes one. maxRetries 0 unless a scenario is about the SDK's retries, so every answer is seen
// as the gateway gave it; `attempts` counts the HTTP requests the SDK really sent (its retries included).
function makeClient(options = {}) {
  const attempts = [];
  const client = new OpenAI({
    baseURL,
    apiKey,
    maxRetries: 0,
    timeout: 60_000,
    ...options,
    fetch: async (url, init) => {
      const headers = new Headers(init?.headers);
      attempts.push({
        url: String(url),
        idempotencyKey: headers.get('idempotency-key'),
        retryCount: headers.get('x-stainless-retry-count'),
      });
      return fetch(url, init);
    },
  });
  return { client, attempts };
}

const sessionHeaders = (session) => ({ 'X-Session-Id': session });

function headersOf(response) {
  const out = {};
  for (const name of ['x-session-id', 'x-statefold-state-version', 'x-statefold-request-hash',
    'x-statefold-idempotent-replay', 'x-should-retry', 'content-type']) {
    const value = response.headers.get(name);
    if (value !== null) out[name] = value;
  }
  return out;
}

function describeError(error) {
  const out = { class: error?.constructor?.name, message: String(error?.message) };
  if (error instanceof OpenAI.APIError) {
    Object.assign(out, {
      isAPIError: true,
      status: error.status ?? null,
      code: error.code ?? null,
      type: error.type ?? null,
      error: error.error ?? null,
      shouldRetry: error.headers?.get?.('x-should-retry') ?? null,
    });
  }
  return out;
}

// The error a call that must fail raised, described; a call that succeeded instead is reported as such.
async function failure(promise) {
  try {
    const value = await promise;
    return { class: null, unexpectedSuccess: true, value };
  } catch (error) {
    return describeError(error);
  }
}

const usageOf = (u) => (u ? { prompt: u.prompt_tokens, completion: u.completion_tokens, total: u.total_tokens } : null);

const WEATHER = {
  name: 'get_weather',
  description: 'The current weather in a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const TIME = {
  name: 'get_time',
  description: 'The local time in a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

const scenarios = {
  // Plain chat: the session in the client's default headers, only the new message sent; then metadata.session_id.
  async chat() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const turns = [];
    for (const messages of [
      [{ role: 'system', content: 'You are a terse geography tutor.' },
        { role: 'user', content: 'What is the capital of France?' }],
      [{ role: 'user', content: 'And its population?' }],
    ]) {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4o', messages }).withResponse();
      turns.push({
        id: data.id, object: data.object, content: data.choices[0].message.content,
        finish: data.choices[0].finish_reason, usage: usageOf(data.usage), headers: headersOf(response),
      });
    }
    const { client: plain } = makeClient();
    const meta = [];
    for (const text of ['one', 'two']) {
      const { data, response } = await plain.chat.completions.create({
        model: 'gpt-4o', metadata: { session_id: args.metaSession }, messages: [{ role: 'user', content: text }],
      }).withResponse();
      meta.push({ content: data.choices[0].message.content, headers: headersOf(response) });
    }
    const missing = await failure(plain.chat.completions.create({
      model: 'gpt-4o', messages: [{ role: 'user', content: 'who am I?' }],
    }));
    return { turns, meta, missing };
  },

  // Streaming with include_usage (create + for await), then the SDK's stream helper and its final completion.
  async stream() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const { data: stream, response } = await client.chat.completions.create({
      model: 'gpt-4o', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Count in Greek letters.' }],
    }).withResponse();
    const chunks = [];
    for await (const chunk of stream) {
      chunks.push({
        id: chunk.id, object: chunk.object, choices: chunk.choices.length,
        content: chunk.choices[0]?.delta?.content ?? null, finish: chunk.choices[0]?.finish_reason ?? null,
        usage: usageOf(chunk.usage),
      });
    }
    const helper = client.chat.completions.stream({
      model: 'gpt-4o', stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Again, in Latin.' }],
    });
    const deltas = [];
    helper.on('content', (delta) => deltas.push(delta));
    const final = await helper.finalChatCompletion();
    return {
      headers: headersOf(response), chunks,
      helper: { deltas, content: final.choices[0].message.content, usage: usageOf(final.usage) },
    };
  },

  // The runTools helper: it calls the functions and sends the whole conversation back each round, until the model
  // answers in text; then the user asks again with the helper's messages plus the new question.
  async runTools() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const called = [];
    const tools = [
      { type: 'function', function: { ...WEATHER, parse: JSON.parse,
        function: ({ city }) => {
          called.push(['get_weather', city]);
          return { city, temp_c: city === 'Oslo' ? -3 : 21 };
        } } },
      { type: 'function', function: { ...TIME, parse: JSON.parse,
        function: ({ city }) => { called.push(['get_time', city]); return `12:00 in ${city}`; } } },
    ];
    const runner = client.chat.completions.runTools({
      model: 'gpt-4o', tools,
      messages: [{ role: 'system', content: 'You use tools.' }, { role: 'user', content: 'Paris and Oslo, now?' }],
    });
    const first = await runner.finalContent();
    const firstRound = { content: first, calls: runner.allChatCompletions().length,
      roles: runner.messages.map((m) => m.role) };
    // The follow-up streams (runTools with stream: true): the same whole-conversation rounds, streamed.
    const again = client.chat.completions.runTools({
      model: 'gpt-4o', tools, stream: true, stream_options: { include_usage: true },
      messages: [...runner.messages, { role: 'user', content: 'And tomorrow?' }],
    });
    const deltas = [];
    again.on('content', (delta) => deltas.push(delta));
    const second = await again.finalContent();
    return { firstRound, second: { content: second, deltas, calls: again.allChatCompletions().length,
      roles: again.messages.map((m) => m.role) }, called };
  },

  // The cookbook loop: one messages array, each reply pushed as the SDK returned it, the whole array sent each turn;
  // then a manual tool round trip on the same array.
  async manualLoop() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const messages = [{ role: 'system', content: 'You are terse.' }];
    const replies = [];
    for (let turn = 0; turn < args.turns; turn++) {
      messages.push({ role: 'user', content: `Question ${turn}?` });
      const completion = await client.chat.completions.create({ model: 'gpt-4o', messages });
      messages.push(completion.choices[0].message);
      replies.push(completion.choices[0].message.content);
    }
    messages.push({ role: 'user', content: 'Weather in Paris?' });
    const tools = [{ type: 'function', function: WEATHER }];
    const asked = await client.chat.completions.create({ model: 'gpt-4o', messages, tools });
    const message = asked.choices[0].message;
    messages.push(message);
    for (const call of message.tool_calls) {
      const { city } = JSON.parse(call.function.arguments);
      messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify({ city, sky: 'sunny' }) });
    }
    const answered = await client.chat.completions.create({ model: 'gpt-4o', messages, tools });
    messages.push(answered.choices[0].message);
    return { replies, toolCalls: message.tool_calls.map((c) => ({ id: c.id, name: c.function.name,
      arguments: JSON.parse(c.function.arguments) })), final: answered.choices[0].message.content,
    sent: messages.length };
  },

  // The loop again, a turn failing upstream (500) and the user retrying the same call: the same array, resent.
  async retryAfterFailure() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const messages = [{ role: 'user', content: 'Hello' }];
    messages.push((await client.chat.completions.create({ model: 'gpt-4o', messages })).choices[0].message);
    messages.push({ role: 'user', content: 'And now?' });
    const failed = await failure(client.chat.completions.create({ model: 'gpt-4o', messages }));
    const retried = await client.chat.completions.create({ model: 'gpt-4o', messages });
    return { failed, retried: retried.choices[0].message.content };
  },

  // A history that does not continue the session's: an earlier message edited, and another system prompt.
  async diverged() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const messages = [{ role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'What is the capital of France?' }];
    const answer = await client.chat.completions.create({ model: 'gpt-4o', messages });
    messages.push(answer.choices[0].message);
    const edited = structuredClone(messages);
    edited[1].content = 'What is the capital of Spain?';
    edited.push({ role: 'user', content: 'And its population?' });
    const editedError = await failure(client.chat.completions.create({ model: 'gpt-4o', messages: edited }));
    const otherPrompt = structuredClone(messages);
    otherPrompt[0].content = 'You are verbose.';
    otherPrompt.push({ role: 'user', content: 'And its population?' });
    const promptError = await failure(client.chat.completions.create({ model: 'gpt-4o', messages: otherPrompt }));
    return { first: answer.choices[0].message.content, edited: editedError, prompt: promptError };
  },

  // Idempotency-Key: the same key again is the same answer (the stored one), streamed or not, on chat and Responses.
  async idempotency() {
    const { client, attempts } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'Answer once.' }] };
    const keyed = { headers: { 'Idempotency-Key': args.chatKey } };
    const one = await client.chat.completions.create(body, keyed).withResponse();
    const two = await client.chat.completions.create(body, keyed).withResponse();
    let streamed = '';
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true }, keyed)) {
      streamed += chunk.choices[0]?.delta?.content ?? '';
    }
    const rkeyed = { headers: { 'Idempotency-Key': args.responsesKey } };
    const r1 = await client.responses.create({ model: 'gpt-4.1', input: 'Once?' }, rkeyed).withResponse();
    const r2 = await client.responses.create({ model: 'gpt-4.1', input: 'Once?' }, rkeyed).withResponse();
    const pick = ({ data, response }) => ({ id: data.id, content: data.choices[0].message.content,
      usage: usageOf(data.usage), headers: headersOf(response) });
    const pickR = ({ data, response }) => ({ id: data.id, text: data.output_text, usage: data.usage,
      headers: headersOf(response) });
    return { chat: [pick(one), pick(two)], streamed, responses: [pickR(r1), pickR(r2)], attempts: attempts.length };
  },

  // One Idempotency-Key on two different requests (a client bug: a key reused for the next question).
  async idempotencyKeyReused() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const keyed = { headers: { 'Idempotency-Key': args.key } };
    const first = await client.chat.completions.create({ model: 'gpt-4o',
      messages: [{ role: 'user', content: 'What is the capital of France?' }] }, keyed);
    const second = await failure(client.chat.completions.create({ model: 'gpt-4o',
      messages: [{ role: 'user', content: 'What is the capital of Peru?' }] }, keyed));
    return { first: first.choices[0].message.content, second };
  },

  // The SDK's own retry after its timeout, with the user's Idempotency-Key on the request: the retry waits for (or
  // replays) the first attempt's answer instead of running the turn again.
  async timeoutRetry() {
    const { client, attempts } = makeClient({
      defaultHeaders: sessionHeaders(args.session), timeout: args.timeoutMs, maxRetries: 2,
    });
    const started = Date.now();
    const { data, response } = await client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'Slow question.' }] },
      { headers: { 'Idempotency-Key': args.key } },
    ).withResponse();
    return { content: data.choices[0].message.content, id: data.id, headers: headersOf(response), attempts,
      elapsedMs: Date.now() - started };
  },

  // Output limits above the 4096 default reserve, as the SDK sends them, and parameters statefold does not know
  // (a provider's own, or newer than statefold) in the body as JavaScript users add them.
  async outputLimits() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    await client.chat.completions.create({ model: 'gpt-4o', max_completion_tokens: 16000, verbosity: 'low', top_k: 5,
      messages: [{ role: 'user', content: 'essay' }] });
    await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 8192,
      messages: [{ role: 'user', content: 'longer' }] });
    const response = await client.responses.create({ model: 'gpt-4.1', max_output_tokens: 50000, input: 'a book' });
    return { responsesMaxOutputTokens: response.max_output_tokens };
  },

  // A Responses chain by previous_response_id (no session header: the first call opens a session), retrieval, a
  // streamed turn through the SDK's stream helper, and a function call round trip.
  async responses() {
    const { client } = makeClient();
    const { data: first, response } = await client.responses.create({
      model: 'gpt-4.1', input: 'Name a prime number.', instructions: 'Answer in one short sentence.',
    }).withResponse();
    const second = await client.responses.create({ model: 'gpt-4.1', input: 'And another one?',
      previous_response_id: first.id });
    const retrieved = await client.responses.retrieve(first.id);
    const stream = client.responses.stream({ model: 'gpt-4.1', input: 'Count to four.',
      previous_response_id: second.id });
    const types = [];
    let deltas = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') deltas += event.delta;
    }
    const streamed = await stream.finalResponse();
    const tool = { type: 'function', ...WEATHER };
    const asked = await client.responses.create({ model: 'gpt-4.1', input: 'Weather in Lima?', tools: [tool],
      previous_response_id: streamed.id });
    const call = asked.output.find((item) => item.type === 'function_call');
    const answered = await client.responses.create({ model: 'gpt-4.1', tools: [tool], previous_response_id: asked.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '19 C' }] });
    // Continuing from a response that is not the latest branches there, as on OpenAI.
    const branch = await client.responses.create({ model: 'gpt-4.1', input: 'Name an even one.',
      previous_response_id: first.id });
    const missing = await failure(client.responses.retrieve(`${first.id}x`));
    return {
      session: response.headers.get('x-session-id'),
      first: { id: first.id, text: first.output_text, status: first.status, usage: first.usage },
      second: { id: second.id, text: second.output_text, previous: second.previous_response_id },
      retrieved: { id: retrieved.id, text: retrieved.output_text },
      streamed: { id: streamed.id, text: streamed.output_text, deltas, types },
      call: { call_id: call.call_id, name: call.name, arguments: JSON.parse(call.arguments) },
      answered: { id: answered.id, text: answered.output_text },
      branch: { id: branch.id, text: branch.output_text,
        retrieved: (await client.responses.retrieve(branch.id)).output_text },
      missing,
    };
  },

  // Upstream failures through a client with the SDK's default retries: the gateway's errors say x-should-retry:
  // false (it has retried the upstream already), so the SDK sends each request once and raises its error class.
  async errors() {
    const { client, attempts } = makeClient({ defaultHeaders: sessionHeaders(args.session), maxRetries: 2 });
    const out = {};
    const ask = (text, extra = {}) => client.chat.completions.create({ model: 'gpt-4o',
      messages: [{ role: 'user', content: text }], ...extra });
    out.rateLimited = await failure(ask('Busy?'));
    out.rateLimitedAttempts = attempts.length;
    out.serverError = await failure(ask('Will this work?'));
    out.serverErrorAttempts = attempts.length;
    out.streamed = await failure((async () => {
      for await (const chunk of await ask('Stream please.', { stream: true })) void chunk;
    })());
    out.streamedAttempts = attempts.length;
    out.responses = await failure(client.responses.create({ model: 'gpt-4.1', input: 'Respond?' }));
    out.responsesAttempts = attempts.length;
    // Outside the turn routes too, errors have OpenAI's shape, so the SDK keeps message, type and code.
    out.noSession = await failure(client.get(`/sessions/${args.session}-nobody`));
    out.noRoute = await failure(client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' }));
    return out;
  },

  // A stream the user stops reading (`break` out of `for await`, which aborts the request): the turn ends as the
  // client's (receipt 499), and the session takes the next turn.
  async streamAbort() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const pieces = [];
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true,
      messages: [{ role: 'user', content: 'A long story, please.' }] });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) pieces.push(chunk.choices[0].delta.content);
      if (pieces.length === 2) break;
    }
    let next = null;
    const refused = [];
    for (let i = 0; i < 50 && next === null; i++) {
      try {
        next = await client.chat.completions.create({ model: 'gpt-4o',
          messages: [{ role: 'user', content: 'Still there?' }] });
      } catch (error) {
        if (!(error instanceof OpenAI.ConflictError)) throw error;
        refused.push(error.code);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    return { pieces, next: next?.choices[0].message.content ?? null, refused };
  },

  // A Responses stream whose upstream breaks midway ends with response.failed, an event the SDK delivers.
  async responsesStreamFailure() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const events = [];
    let thrown = null;
    try {
      const stream = await client.responses.create({ model: 'gpt-4.1', input: 'Count.', stream: true });
      for await (const event of stream) events.push(event);
    } catch (error) {
      thrown = describeError(error);
    }
    const last = events.at(-1);
    return {
      thrown,
      types: events.map((e) => e.type),
      sequence: events.map((e) => e.sequence_number),
      createdId: events[0]?.response?.id ?? null,
      failed: last?.type === 'response.failed' ? { id: last.response.id, status: last.response.status,
        error: last.response.error } : null,
      retrieved: last?.response?.id ? await failure(client.responses.retrieve(last.response.id)) : null,
    };
  },

  // OpenAI's own stateless Responses loop ("manage the conversation state yourself"): the output items of each
  // response pushed onto the input array, the whole array sent each turn, here into a session named by its header.
  async responsesManualLoop() {
    const { client } = makeClient({ defaultHeaders: sessionHeaders(args.session) });
    const input = [];
    const texts = [];
    for (let turn = 0; turn < args.turns; turn++) {
      input.push({ role: 'user', content: `Question ${turn}?` });
      const response = await client.responses.create({ model: 'gpt-4.1', input });
      input.push(...response.output);
      texts.push(response.output_text);
    }
    return { texts, sent: input.length };
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const result = await scenarios[name]();
process.stdout.write(`${JSON.stringify(result)}\n`);

// The chat page in headless Chromium, driven by playwright-core. Run by
// examples/tests/browser.rs, which starts the servers and the FakeBedrock model and sets:
//   CHAT_URL     the main server (SQLite store, FakeBedrock)
//   LIMITED_URL  a server allowing two requests a minute
//   KEYED_URL    a server with --auth api-key, and API_KEY a key it accepts
//   REASONING_URL a server whose model reasons and cites documents (a Claude model id,
//                --reasoning-budget, --citations)
//   TOOLS_URL, FAKE_TOOLS_URL servers with --tool current_time, set only for the `tool calls`
//                tests (see below), which are skipped without them
//   CHROMIUM     the browser binary; SCREENSHOT_DIR where screenshots go
// A line `@fault mid-stream` or `@slow-reply` on stdout asks the harness to script the
// model's next answer; it answers `ok` on stdin.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import readline from 'node:readline';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through examples/tests/browser.rs`);
  return value;
};
const CHAT_URL = env('CHAT_URL');
const TIMEOUT = 30_000;

// --- the harness's control channel ---------------------------------------------------------
const input = readline.createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
input.on('line', (line) => (waiting.length ? waiting.shift()(line) : answers.push(line)));
function control(command) {
  process.stdout.write(`@${command}\n`);
  return new Promise((resolve) => (answers.length ? resolve(answers.shift()) : waiting.push(resolve)));
}

// --- one browser; a fresh context (cookies, storage) per test ---------------------------------
let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: env('CHROMIUM'),
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
});
after(async () => {
  await browser?.close();
  input.close();
});

/** A new page (new identity), recording dialogs, uncaught errors and console errors. */
async function openPage(url = CHAT_URL, viewport = { width: 1200, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = { dialogs: [], errors: [], console: [] };
  page.on('dialog', (dialog) => {
    problems.dialogs.push(dialog.message());
    dialog.dismiss();
  });
  page.on('pageerror', (error) => problems.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.console.push(message.text());
  });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  return { page, context, problems };
}

/** Console errors other than the failed requests a test provokes on purpose. */
const unexpected = (problems, expectedStatuses = []) =>
  problems.console.filter(
    (text) => !expectedStatuses.some((status) => text.includes(`status of ${status}`)),
  );

async function sendMessage(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

/** Waits for the last answer to finish (not pending, not streaming). */
async function lastAnswer(page) {
  await page.waitForFunction(() => {
    const answers = document.querySelectorAll('.message.assistant');
    const last = answers[answers.length - 1];
    return last && !last.classList.contains('pending') && document.getElementById('stop').hidden;
  });
  return page.locator('.message.assistant').last();
}

async function conversationTitles(page) {
  return page.locator('#conversations .conversation-open').allTextContents();
}

// --- attachments ------------------------------------------------------------------------------

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k += 1) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

/** A real PNG (8-bit RGB), each pixel's colour from `paint(x, y)`. */
function png(width, height, paint = (x, y) => [(x * 255) / width, (y * 255) / height, 160]) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) raw.set(paint(x, y).map(Math.round), y * (width * 3 + 1) + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc32(body));
    return Buffer.concat([head, body, tail]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const SQUARE = png(64, 48);
const NOTES = Buffer.from('The secret word is pelican.\nSecond line of the notes.\n');

/** Waits for every image in `selector` to have loaded, and returns their natural widths. */
async function loadedWidths(page, selector) {
  await page.waitForFunction(
    (s) => [...document.querySelectorAll(s)].every((img) => img.complete && img.naturalWidth > 0),
    selector,
  );
  return page.locator(selector).evaluateAll((images) => images.map((img) => img.naturalWidth));
}

/** The bytes at `url` as the page downloads them (with its cookie or token), in base64. */
async function download(page, url) {
  return page.evaluate(async (address) => {
    const token = sessionStorage.getItem('bedrock-chat.token');
    const response = await fetch(address, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (!response.ok) throw new Error(`${address}: ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { base64: btoa(text), type: response.headers.get('content-type') };
  }, url);
}

/** The messages of the open conversation as the API has them. */
async function storedMessages(page) {
  const chatId = new URL(page.url()).hash.slice(1);
  return page.evaluate(async (id) => {
    const response = await fetch(`/api/v1/conversations/${id}/messages?limit=50`);
    return (await response.json()).items;
  }, chatId);
}

test('a message is sent with Enter and its answer streams in, in pieces, then the conversation is listed', async () => {
  const { page, context, problems } = await openPage();
  // Shift+Enter is a new line, not a send.
  await page.fill('#input', 'first line');
  await page.press('#input', 'Shift+Enter');
  await page.type('#input', 'second line');
  assert.equal(await page.inputValue('#input'), 'first line\nsecond line');
  assert.equal(await page.locator('.message').count(), 0);
  await page.fill('#input', '');

  // Record every length the answer has while it streams.
  await page.evaluate(() => {
    window.seenLengths = new Set();
    new MutationObserver(() => {
      const bodies = document.querySelectorAll('.message.assistant .body');
      const last = bodies[bodies.length - 1];
      if (last) window.seenLengths.add(last.textContent.length);
    }).observe(document.getElementById('message-list'), { subtree: true, childList: true, characterData: true });
  });
  const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  await sendMessage(page, `Tell me about streaming: ${words}`);
  const answer = await lastAnswer(page);
  // FakeBedrock echoes the question, word by word.
  assert.match(await answer.textContent(), /word39/);
  const lengths = await page.evaluate(() => [...window.seenLengths].filter((n) => n > 0));
  assert.ok(lengths.length >= 5, `the answer appeared in pieces, saw lengths ${lengths}`);

  assert.equal(await page.locator('.message.user .body').first().textContent(), `Tell me about streaming: ${words}`);
  const titles = await conversationTitles(page);
  assert.equal(titles.length, 1, `the conversation is listed: ${titles}`);
  assert.match(titles[0], /^Tell me about streaming/);
  assert.match(await page.locator('#usage-chat').textContent(), /\d+ tokens in this conversation/);
  assert.match(await page.locator('#usage-user').textContent(), /You: \d+ tokens today/);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('after a reload the conversation and its messages are still there', async () => {
  const { page, context, problems } = await openPage();
  await sendMessage(page, 'Remember this: the capital of Peru is Lima');
  await lastAnswer(page);
  const url = page.url();
  assert.match(url, /#[0-9a-f-]{36}$/, 'the open conversation is in the address');

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('.message.assistant');
  assert.match(await page.locator('.message.user').first().textContent(), /capital of Peru is Lima/);
  assert.match(await page.locator('.message.assistant').first().textContent(), /capital of Peru is Lima/);

  // The list too, from a fresh start of the page (same browser identity).
  await page.goto(new URL('/', url).href);
  await page.waitForSelector('body[data-ready="true"]');
  assert.ok((await conversationTitles(page)).some((t) => t.startsWith('Remember this')));
  assert.equal(await page.locator('.message').count(), 0, 'a new chat is open');
  await page.locator('#conversations .conversation-open', { hasText: 'Remember this' }).click();
  await page.waitForSelector('.message.assistant');
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('the conversation list loads more as it is scrolled', async () => {
  const { page, context, problems } = await openPage();
  // 25 conversations through the API, as this browser's identity (the page shows 20 at a time).
  await page.evaluate(async () => {
    for (let i = 0; i < 25; i += 1) {
      const response = await fetch('/api/v1/chats', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: `conversation ${String(i).padStart(2, '0')}` }),
      });
      if (!response.ok) throw new Error(`send ${i}: ${response.status}`);
    }
  });
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal((await conversationTitles(page)).length, 20, 'the first page');
  await page.locator('#conversations-more').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelectorAll('#conversations .conversation').length === 25);
  const titles = await conversationTitles(page);
  assert.equal(titles[0], 'conversation 24', 'newest first');
  assert.equal(titles[24], 'conversation 00');
  assert.equal(new Set(titles).size, 25, 'no conversation twice');
  assert.equal(await page.isVisible('#conversations-more'), false, 'nothing more to load');
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('with the server unreachable, the page says so and the retry works once it is back', async () => {
  const { page, context, problems } = await openPage();
  await context.setOffline(true);
  await sendMessage(page, 'are you there?');
  await page.waitForSelector('.message.assistant.failed');
  assert.match(await page.locator('.failure').textContent(), /server cannot be reached/);
  await context.setOffline(false);
  await page.click('.failure .retry');
  assert.match(await (await lastAnswer(page)).textContent(), /are you there\?/);
  assert.equal(await page.locator('.message.assistant.failed').count(), 0);
  assert.deepEqual(problems.errors, []);
  await context.close();
});

test('a conversation is renamed, and deleted', async () => {
  const { page, context, problems } = await openPage();
  await sendMessage(page, 'A conversation to rename');
  await lastAnswer(page);
  const item = page.locator('#conversations .conversation').first();
  await item.getByRole('button', { name: /^Rename “/ }).click();
  await page.fill('#conversations input.rename', 'Renamed in the browser');
  await page.press('#conversations input.rename', 'Enter');
  await page.waitForSelector('#conversations .conversation-open >> text=Renamed in the browser');
  assert.equal(await page.textContent('#chat-title'), 'Renamed in the browser');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.deepEqual(await conversationTitles(page), ['Renamed in the browser']);

  // Escape leaves the title as it was.
  await page.locator('#conversations .conversation').first().getByRole('button', { name: /^Rename “/ }).click();
  await page.fill('#conversations input.rename', 'not this');
  await page.press('#conversations input.rename', 'Escape');
  assert.deepEqual(await conversationTitles(page), ['Renamed in the browser']);

  // Delete asks first; Cancel keeps it, Delete removes it.
  const remove = page.locator('#conversations .conversation').first().getByRole('button', { name: /^Delete “/ });
  await remove.click();
  await page.click('#confirm-dialog button[value="cancel"]');
  assert.equal((await conversationTitles(page)).length, 1);
  await remove.click();
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelectorAll('#conversations .conversation').length === 0);
  assert.equal(await page.textContent('#chat-title'), 'New chat');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.deepEqual(await conversationTitles(page), []);
  assert.ok(await page.isVisible('#conversations-empty'));
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('a persona is made from a description and chatted with', async () => {
  const { page, context, problems } = await openPage();
  await page.click('#new-persona');
  await page.click('#persona-create');
  assert.match(await page.textContent('#persona-status'), /Describe the persona first/);
  await page.fill('#persona-input', 'A patient chemistry tutor');
  await page.click('#persona-create');
  await page.waitForSelector('#persona:not([hidden])');
  assert.equal(await page.isVisible('#persona-dialog'), false);
  assert.match(await page.textContent('#persona-name'), /^Persona: /);
  const title = await page.textContent('#chat-title');
  assert.equal((await conversationTitles(page))[0], title, 'the persona conversation is listed first');
  await page.click('#persona summary');
  assert.ok((await page.textContent('#persona-prompt')).trim().length > 0, 'the system prompt is shown');

  await sendMessage(page, 'Hello tutor');
  const answer = await lastAnswer(page);
  assert.match(await answer.textContent(), /Hello tutor/);
  assert.equal(await page.locator('.message.user').count(), 1);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('HTML, script and javascript: links in a message or an answer show as text and run nothing', async () => {
  const { page, context, problems } = await openPage();
  const attack = [
    'Look <img src=x onerror="window.pwned=1;alert(1)"> here',
    '<script>window.pwned=2;alert(2)</script>',
    '[click me](javascript:window.pwned=3;alert(3)) and <a href="javascript:alert(4)" onclick="alert(5)">raw</a>',
    '<iframe src="javascript:alert(6)"></iframe>',
    'and **bold**',
  ].join('\n\n');
  await sendMessage(page, attack);
  const answer = await lastAnswer(page);
  const text = await answer.textContent();
  assert.match(text, /<img src=x onerror=/, 'the img tag shows as text');
  assert.match(text, /<script>window\.pwned=2/, 'the script tag shows as text');
  assert.equal(await page.locator('.message img, .message script, .message iframe').count(), 0);
  assert.equal(await answer.locator('strong').textContent(), 'bold', 'Markdown still renders');
  const hrefs = await page.locator('.message a').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
  assert.ok(hrefs.every((href) => href === null || !/^\s*javascript:/i.test(href)), `hrefs: ${hrefs}`);
  const handlers = await page.locator('.message *').evaluateAll((nodes) =>
    nodes.flatMap((n) => [...n.attributes].map((a) => a.name)).filter((name) => name.startsWith('on')),
  );
  assert.deepEqual(handlers, []);
  // Clicking the would-be link runs nothing either.
  await answer.locator('a', { hasText: 'click me' }).click();
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(problems.dialogs, []);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('over the rate limit, the page says when to try again', async () => {
  const { page, context, problems } = await openPage(env('LIMITED_URL'));
  // Two requests a minute per client: the page's own loads count too, so the limit
  // is reached within a few sends.
  let failed = false;
  for (let i = 0; i < 4 && !failed; i += 1) {
    await sendMessage(page, `message ${i}`);
    await lastAnswer(page);
    failed = (await page.locator('.message.assistant.failed').count()) > 0;
  }
  assert.ok(failed, 'a send was refused');
  const failure = await page.locator('.message.assistant.failed .failure').last().textContent();
  assert.match(failure, /You are over the rate limit\. Try again in \d+ s\./);
  assert.ok(await page.locator('.message.assistant.failed .retry').last().isVisible());
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems, [429]), []);
  await context.close();
});

test('an answer that fails mid-stream is marked failed, and Retry completes it once', async () => {
  const { page, context, problems } = await openPage();
  await control('fault mid-stream');
  await sendMessage(page, 'one two three four five six seven eight nine ten');
  await page.waitForSelector('.message.assistant.failed');
  assert.equal(await control('check'), 'ok', 'the fault was used by this send');
  const failed = page.locator('.message.assistant.failed');
  assert.match(await failed.locator('.failure').textContent(), /The model failed to answer/);
  assert.match(await failed.locator('.body').textContent(), /one two/, 'the partial answer stays visible');
  assert.doesNotMatch(page.url(), /#/, 'the failed send started no conversation');
  await failed.locator('.retry').click();
  const answer = await lastAnswer(page);
  assert.equal(await page.locator('.message.assistant.failed').count(), 0);
  assert.match(await answer.textContent(), /nine ten/);

  // Stored once: one question, one answer.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('.message.assistant');
  assert.equal(await page.locator('.message.user').count(), 1);
  assert.equal(await page.locator('.message.assistant').count(), 1);
  assert.match(await page.locator('.message.assistant').textContent(), /nine ten/);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('with the model unavailable, the page says so and when to try again', async () => {
  const { page, context, problems } = await openPage();
  await control('model-unavailable');
  await sendMessage(page, 'is the model there?');
  await page.waitForSelector('.message.assistant.failed');
  assert.match(
    await page.locator('.failure').textContent(),
    /The model is unavailable right now\. Try again in \d+ s\./,
  );
  assert.equal(await control('check'), 'ok', 'the SDK used every 503 the model was given');
  await page.click('.failure .retry');
  assert.match(await (await lastAnswer(page)).textContent(), /is the model there\?/);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems, [503]), []);
  await context.close();
});

test('Stop ends the answer on the page, and the whole answer is still stored', async () => {
  const { page, context, problems } = await openPage();
  await control('slow-reply');
  await sendMessage(page, 'a long answer please');
  await page.waitForFunction(() => /slow2 /.test(document.querySelector('.message.assistant .body')?.textContent ?? ''));
  const chatUrl = page.url();
  assert.match(chatUrl, /#[0-9a-f-]{36}$/, 'the new conversation is in the address');
  await page.click('#stop');
  await page.waitForSelector('.message.assistant.stopped');
  assert.equal(await control('check'), 'ok', 'the slow reply was used by this send');
  assert.ok(await page.isVisible('#send'));
  const shown = await page.locator('.message.assistant .body').textContent();
  assert.doesNotMatch(shown, /slow59/, 'the answer stopped on the page');
  // The server finishes and stores it (about 6 s more); the list shows the conversation
  // then, and reopening it shows the whole answer.
  await page.waitForSelector('#conversations .conversation-open >> text=a long answer please', { timeout: 60_000 });
  await page.goto(chatUrl);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('.message.assistant');
  const stored = await page.locator('.message.assistant .body').textContent();
  assert.match(stored, /slow0 [^]*slow59/, 'the whole answer was stored');
  assert.deepEqual(problems.errors, []);
  // 404s: the page asking for the conversation before the server has stored it.
  assert.deepEqual(unexpected(problems, [404]), []);
  await context.close();
});

test('with API keys, the page asks for a token, keeps it in the tab, and then works', async () => {
  const { page, context, problems } = await openPage(env('KEYED_URL'));
  await page.waitForSelector('#settings-dialog[open]');
  assert.match(await page.textContent('#notice-text'), /needs credentials/);
  await page.fill('#token-input', env('API_KEY'));
  await page.click('#settings-form button[type="submit"]');
  await sendMessage(page, 'hello with a key');
  const answer = await lastAnswer(page);
  assert.match(await answer.textContent(), /hello with a key/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('bedrock-chat.token')), env('API_KEY'));
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing kept beyond the tab');
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems, [401]), []);
  await context.close();
});

test('the page works by keyboard and at phone width; screenshots of both', async () => {
  const { page, context, problems } = await openPage();
  await sendMessage(page, 'Here is a list:\n\n- one\n- two\n\n```\ncode block\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |');
  await lastAnswer(page);
  const dir = env('SCREENSHOT_DIR');
  await page.screenshot({ path: path.join(dir, 'desktop.png') });

  await page.setViewportSize({ width: 390, height: 780 });
  assert.equal(await page.isVisible('#toggle-sidebar'), true, 'the menu button shows on a phone');
  // The list is off screen until asked for.
  await page.waitForFunction(() => {
    const sidebar = document.getElementById('sidebar');
    return sidebar.getBoundingClientRect().right <= 1 && getComputedStyle(sidebar).visibility === 'hidden';
  });
  await page.screenshot({ path: path.join(dir, 'phone.png') });
  await page.click('#toggle-sidebar');
  await page.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().x >= 0);
  await page.screenshot({ path: path.join(dir, 'phone-list.png') });
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.body.classList.contains('sidebar-open'));

  // Tab reaches the message box and Enter sends from it.
  await page.setViewportSize({ width: 1200, height: 800 });
  await page.click('#new-chat');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'input');
  await page.keyboard.type('typed by keyboard');
  await page.keyboard.press('Enter');
  assert.match(await (await lastAnswer(page)).textContent(), /typed by keyboard/);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('an image and a document are attached with the file picker, sent, and shown again from history', async () => {
  const { page, context, problems } = await openPage();
  const attach = page.getByRole('button', { name: 'Attach images or documents' });
  assert.ok(await attach.isVisible(), 'the attach button is labelled');
  const accept = await page.getAttribute('#file-input', 'accept');
  for (const ext of ['.png', '.jpeg', '.webp', '.pdf', '.docx', '.txt', '.md']) assert.ok(accept.includes(ext), accept);
  assert.equal(await page.getAttribute('#file-input', 'multiple'), '');

  // The attach button, reached by keyboard, opens the file picker: the picker's input is
  // clicked (watched here, the native dialog kept shut: Playwright's file-chooser event
  // proved flaky under load), and the files are then chosen in it.
  await page.evaluate(() => {
    document.getElementById('file-input').addEventListener('click', (event) => {
      window.pickerOpened = true;
      event.preventDefault();
    });
  });
  await page.focus('#input');
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'attach');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.pickerOpened === true);
  await page.setInputFiles('#file-input', [
    { name: 'square.png', mimeType: 'image/png', buffer: SQUARE },
    { name: 'meeting notes.txt', mimeType: 'text/plain', buffer: NOTES },
  ]);
  const chips = page.locator('#attachments .chip');
  await page.waitForFunction(() => document.querySelectorAll('#attachments .chip').length === 2);
  assert.deepEqual(await loadedWidths(page, '#attachments .chip img'), [64], 'the image chip shows a thumbnail');
  assert.match(await chips.nth(0).textContent(), /square\.png\s*PNG · [\d.]+ K?B/);
  assert.match(await chips.nth(1).textContent(), new RegExp(String.raw`meeting notes\.txt\s*TXT · ${NOTES.length} B`));
  assert.ok(await chips.nth(1).getByRole('button', { name: 'Remove meeting notes.txt' }).isVisible());

  await sendMessage(page, 'What do these say?');
  const answer = await lastAnswer(page);
  assert.match(await answer.textContent(), /What do these say\?/);
  assert.equal(await page.locator('.message.assistant.failed').count(), 0);
  assert.equal(await chips.count(), 0, 'the chips clear once sent');
  assert.equal(await page.isVisible('#attachments'), false);
  // The question shows what went with it.
  const sent = page.locator('.message.user .sent-attachments');
  assert.deepEqual(await loadedWidths(page, '.message.user .sent-attachments img'), [64]);
  assert.match(await sent.locator('a.chip').textContent(), new RegExp(String.raw`meeting notes\.txt\s*TXT · ${NOTES.length} B`));

  // Stored: the question's parts, the image's bytes back byte for byte, the document's too.
  const [question] = await storedMessages(page);
  assert.equal(question.content, 'What do these say?');
  const attachments = question.parts.filter((part) => part.type !== 'text');
  assert.deepEqual(
    attachments.map(({ type, format, name, size }) => ({ type, format, name, size })),
    [
      { type: 'image', format: 'png', name: undefined, size: SQUARE.length },
      { type: 'document', format: 'txt', name: 'meeting notes', size: NOTES.length },
    ],
  );
  const image = await download(page, attachments[0].url);
  assert.equal(image.type, 'image/png');
  assert.equal(image.base64, SQUARE.toString('base64'), 'the image downloads as it was sent');
  assert.equal((await download(page, attachments[1].url)).base64, NOTES.toString('base64'));

  // After a reload, from history: the thumbnail (from its URL) and the document's link.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('.message.user .sent-attachments');
  assert.deepEqual(await loadedWidths(page, '.message.user .sent-attachments img'), [64]);
  const items = page.locator('.message.user .sent-attachments li');
  assert.equal(await items.nth(0).getAttribute('data-url'), attachments[0].url);
  const link = items.nth(1).locator('a.chip');
  assert.equal(await link.getAttribute('href'), attachments[1].url);
  assert.equal(await link.getAttribute('download'), 'meeting notes.txt');
  assert.match(await link.textContent(), new RegExp(String.raw`meeting notes\s*TXT · ${NOTES.length} B`));
  assert.match(await page.locator('.message.user .body').textContent(), /^What do these say\?$/);

  // A click on the thumbnail opens the image at full size; Escape closes it.
  await items.nth(0).getByRole('button', { name: /^Open Image 1 \(PNG, / }).click();
  await page.waitForSelector('#image-dialog[open]');
  assert.deepEqual(await loadedWidths(page, '#image-full'), [64]);
  assert.equal(await page.getAttribute('#image-save', 'download'), 'image-1.png');
  const dir = env('SCREENSHOT_DIR');
  await page.screenshot({ path: path.join(dir, 'attachments-viewer.png') });
  await page.keyboard.press('Escape');
  await page.waitForSelector('#image-dialog[open]', { state: 'detached' });

  // Chips waiting in the composer, at desktop and phone widths, light and dark.
  await page.setInputFiles('#file-input', [
    { name: 'square.png', mimeType: 'image/png', buffer: SQUARE },
    { name: 'quarterly figures with a long name.csv', mimeType: 'text/csv', buffer: Buffer.from('a,b\n1,2\n') },
  ]);
  await page.fill('#input', 'And this one?');
  await loadedWidths(page, '#attachments .chip img');
  await page.screenshot({ path: path.join(dir, 'attachments.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(dir, 'attachments-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 390, height: 780 });
  await page.waitForFunction(() => getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden');
  await page.screenshot({ path: path.join(dir, 'attachments-phone.png') });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, 'nothing wider than a phone');
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('files the model does not take are refused in words, nothing is stored, and a removed chip is not sent', async () => {
  const { page, context, problems } = await openPage();
  // Checked on the page: the type, the size, the count.
  await page.setInputFiles('#file-input', { name: 'setup.exe', mimeType: 'application/octet-stream', buffer: Buffer.from('MZ') });
  assert.match(await page.textContent('#notice-text'), /“setup\.exe” is not a supported file type: attach PNG, JPEG, GIF or WebP images, or PDF/);
  await page.setInputFiles('#file-input', { name: 'huge.png', mimeType: 'image/png', buffer: Buffer.alloc(3_750_001) });
  assert.match(await page.textContent('#notice-text'), /“huge\.png” is too large: an image can be at most 3\.75 MB\./);
  const many = Array.from({ length: 6 }, (_, i) => ({ name: `doc${i}.md`, mimeType: 'text/markdown', buffer: Buffer.from(`# ${i}`) }));
  await page.setInputFiles('#file-input', many);
  assert.match(await page.textContent('#notice-text'), /“doc5\.md” was not added: at most 5 documents can be sent with a message\./);
  assert.equal(await page.locator('#attachments .chip').count(), 5);
  for (let i = 0; i < 5; i += 1) await page.click(`#attachments button[aria-label="Remove doc${i}.md"]`);
  assert.equal(await page.locator('#attachments .chip').count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'input', 'focus goes back to the message box');

  // Checked by the server: a .png whose bytes are text is a 415, in words, and stores nothing.
  await page.setInputFiles('#file-input', [
    { name: 'not really.png', mimeType: 'image/png', buffer: Buffer.from('just some text') },
    { name: 'keep.txt', mimeType: 'text/plain', buffer: Buffer.from('kept') },
  ]);
  assert.equal(await page.isVisible('#notice'), false, 'the page itself takes both');
  await sendMessage(page, 'Look at this');
  await page.waitForSelector('.message.assistant.failed');
  assert.match(
    await page.locator('.failure').textContent(),
    /“not really\.png” is not a supported file type: it is not a png image\./,
  );
  assert.equal(await page.locator('#attachments .chip').count(), 2, 'the chips stay for another try');
  assert.doesNotMatch(page.url(), /#/, 'no conversation was started');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.deepEqual(await conversationTitles(page), [], 'nothing was stored');

  // Over a limit only the server checks (8,000 px a side): a 413 naming the file and the limit.
  await page.setInputFiles('#file-input', { name: 'wide.png', mimeType: 'image/png', buffer: png(8001, 1) });
  await sendMessage(page, 'A wide one');
  await page.waitForSelector('.message.assistant.failed');
  assert.match(
    await page.locator('.failure').textContent(),
    /“wide\.png” is too large: an image must be at most 8000 pixels wide and high\./,
  );

  // Removed before sending: not sent.
  await page.setInputFiles('#file-input', { name: 'keep.txt', mimeType: 'text/plain', buffer: Buffer.from('kept') });
  await page.click('#attachments button[aria-label="Remove wide.png"]');
  assert.deepEqual(await page.locator('#attachments .chip-name').allTextContents(), ['keep.txt']);
  await sendMessage(page, 'Only the text file');
  await lastAnswer(page);
  assert.equal(await page.locator('#attachments .chip').count(), 0);
  const [question] = await storedMessages(page);
  assert.deepEqual(
    question.parts.filter((part) => part.type !== 'text').map(({ type, name }) => ({ type, name })),
    [{ type: 'document', name: 'keep' }],
  );
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('.message.user .sent-attachments');
  assert.equal(await page.locator('.message.user').count(), 1, 'only the send that worked is stored');
  assert.equal(await page.locator('.message.user .sent-attachments li').count(), 1);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems, [413, 415]), []);
  await context.close();
});

test('Retry after a failure mid-stream sends the same attachments, stored once', async () => {
  const { page, context, problems } = await openPage();
  await page.setInputFiles('#file-input', { name: 'square.png', mimeType: 'image/png', buffer: SQUARE });
  await control('fault mid-stream');
  await sendMessage(page, 'one two three four five six seven eight nine ten');
  await page.waitForSelector('.message.assistant.failed');
  assert.equal(await control('check'), 'ok', 'the fault was used by this send');
  assert.equal(await page.locator('#attachments .chip').count(), 1, 'the chip stays after the failure');
  await page.click('.failure .retry');
  assert.match(await (await lastAnswer(page)).textContent(), /nine ten/);
  assert.equal(await page.locator('.message.assistant.failed').count(), 0);
  assert.equal(await page.locator('#attachments .chip').count(), 0, 'the chip clears once sent');

  const messages = await storedMessages(page);
  assert.equal(messages.length, 2, 'one question, one answer');
  const image = messages[0].parts.find((part) => part.type === 'image');
  assert.equal((await download(page, image.url)).base64, SQUARE.toString('base64'));
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

/** `image` grown to `size` bytes by a private ancillary chunk before IEND (still a valid PNG). */
function padded(image, size) {
  const end = image.length - 12; // IEND: length, type, CRC
  const data = Buffer.alloc(size - image.length - 12, 0x2a);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from('ruSt', 'ascii'), data]);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(crc32(body));
  return Buffer.concat([image.subarray(0, end), head, body, tail, image.subarray(end)]);
}

test('images are attached by dropping them on the composer and by pasting them', async () => {
  const { page, context, problems } = await openPage();
  // Near Bedrock's 3.75 MB: read and sent in base64 without overflowing the page's stack.
  const dropped = padded(png(40, 40, (x) => [x * 6, 90, 200]), 3_700_000);
  assert.equal(dropped.length, 3_700_000);
  const pasted = png(30, 20, (x, y) => [200, y * 12, x * 8]);
  const transfer = (files) =>
    page.evaluateHandle((list) => {
      const data = new DataTransfer();
      for (const { name, type, base64 } of list) {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        data.items.add(new File([bytes], name, { type }));
      }
      return data;
    }, files.map(({ name, type, bytes }) => ({ name, type, base64: bytes.toString('base64') })));

  const drop = await transfer([{ name: 'dropped.png', type: 'image/png', bytes: dropped }]);
  await page.dispatchEvent('#composer', 'dragenter', { dataTransfer: drop });
  assert.ok(await page.locator('#composer.dropping').isVisible(), 'the composer shows where to drop');
  await page.dispatchEvent('#composer', 'drop', { dataTransfer: drop });
  assert.equal(await page.locator('#composer.dropping').count(), 0);
  assert.deepEqual(await page.locator('#attachments .chip-name').allTextContents(), ['dropped.png']);
  assert.equal(await page.locator('#attachments .chip-meta').textContent(), 'PNG · 3.7 MB');

  // A screenshot pasted from the clipboard has no file name of its own beyond `image.png`.
  const clip = await transfer([{ name: 'image.png', type: 'image/png', bytes: pasted }]);
  await page.evaluate((data) => {
    const input = document.getElementById('input');
    input.focus();
    input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, clip);
  assert.deepEqual(await page.locator('#attachments .chip-name').allTextContents(), ['dropped.png', 'image.png']);
  assert.equal(await page.inputValue('#input'), '', 'nothing pasted as text');

  // A file dropped beside the composer does not replace the page.
  const stray = await transfer([{ name: 'stray.png', type: 'image/png', bytes: dropped }]);
  const url = page.url();
  await page.dispatchEvent('#messages', 'drop', { dataTransfer: stray });
  assert.equal(page.url(), url);

  await sendMessage(page, 'Dropped and pasted');
  await lastAnswer(page);
  assert.deepEqual(await loadedWidths(page, '.message.user .sent-attachments img'), [40, 30]);
  const [question] = await storedMessages(page);
  const images = question.parts.filter((part) => part.type === 'image');
  assert.deepEqual(
    await Promise.all(images.map(async (part) => (await download(page, part.url)).base64)),
    [dropped.toString('base64'), pasted.toString('base64')],
  );
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('with an access token, attachments are fetched with it and shown from blob: URLs', async () => {
  const { page, context, problems } = await openPage(env('KEYED_URL'));
  await page.waitForSelector('#settings-dialog[open]');
  await page.fill('#token-input', env('API_KEY'));
  await page.click('#settings-form button[type="submit"]');
  await page.setInputFiles('#file-input', [
    { name: 'square.png', mimeType: 'image/png', buffer: SQUARE },
    { name: 'notes.md', mimeType: 'text/markdown', buffer: NOTES },
  ]);
  await sendMessage(page, 'with a key and a picture');
  await lastAnswer(page);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('.message.user .sent-attachments');
  assert.deepEqual(await loadedWidths(page, '.message.user .sent-attachments img'), [64]);
  assert.match(await page.getAttribute('.message.user .sent-attachments img', 'src'), /^blob:/);
  // The document's link saves what it fetched with the token.
  const [saved] = await Promise.all([
    page.waitForEvent('download'),
    page.click('.message.user .sent-attachments a.chip'),
  ]);
  assert.equal(saved.suggestedFilename(), 'notes.md');
  const chunks = [];
  for await (const chunk of await saved.createReadStream()) chunks.push(chunk);
  assert.equal(Buffer.concat(chunks).toString(), NOTES.toString());
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems, [401]), []);
  await context.close();
});

test('reasoning streams into a folded block above the answer, opens on click, and survives a reload', async () => {
  const { page, context, problems } = await openPage(env('REASONING_URL'));
  // Record what the reasoning block holds while the answer has no text yet.
  await page.evaluate(() => {
    window.reasoningBeforeAnswer = new Set();
    new MutationObserver(() => {
      const reply = [...document.querySelectorAll('.message.assistant')].pop();
      const reasoning = reply?.querySelector('details.reasoning .reasoning-text')?.textContent ?? '';
      if (reasoning && !reply.querySelector('.body').textContent) window.reasoningBeforeAnswer.add(reasoning.length);
    }).observe(document.getElementById('message-list'), { subtree: true, childList: true, characterData: true });
  });
  await sendMessage(page, 'Why is the sea salty?');
  const answer = await lastAnswer(page);
  const block = answer.locator('details.reasoning');
  assert.equal(await block.count(), 1, 'one reasoning block');
  assert.equal(await block.locator('summary').textContent(), 'Reasoning');
  assert.equal(await block.evaluate((details) => details.open), false, 'folded at first');
  assert.equal(await answer.locator('.reasoning-text').isVisible(), false, 'its text hidden while folded');
  const seen = await page.evaluate(() => [...window.reasoningBeforeAnswer]);
  assert.ok(seen.length >= 3, `the reasoning streamed in, in pieces, before any answer text: saw lengths ${seen}`);
  // Above the answer, apart from it.
  assert.equal(await answer.evaluate((article) => article.querySelector('details.reasoning').nextElementSibling.className), 'body');
  assert.match(await answer.locator('.body').textContent(), /Why is the sea salty\?/);
  assert.doesNotMatch(await answer.locator('.body').textContent(), /Thinking about/);

  await block.locator('summary').click();
  assert.equal(await block.evaluate((details) => details.open), true, 'opened by a click');
  assert.match(await answer.locator('.reasoning-text').textContent(), /^Thinking about: Why is the sea salty\?/);
  assert.equal(await answer.locator('.reasoning-text').isVisible(), true);
  // Dimmed: the muted colour, not the answer's.
  const colours = await answer.evaluate((article) => [
    getComputedStyle(article.querySelector('.reasoning-text')).color,
    getComputedStyle(article.querySelector('.body')).color,
  ]);
  assert.notEqual(colours[0], colours[1], 'the reasoning is dimmed');
  const dir = env('SCREENSHOT_DIR');
  await page.screenshot({ path: path.join(dir, 'reasoning.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(dir, 'reasoning-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });

  // Stored with the answer (the signature stays on the server), and shown again after a reload.
  const stored = await storedMessages(page);
  const parts = stored[1].parts;
  assert.equal(parts[0].type, 'reasoning');
  assert.match(parts[0].text, /^Thinking about: Why is the sea salty\?/);
  assert.equal(parts[0].signature, undefined, 'no signature in the API');
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  const reloaded = page.locator('.message.assistant').last();
  await reloaded.locator('details.reasoning').waitFor({ state: 'attached' });
  assert.equal(await reloaded.locator('details.reasoning').evaluate((details) => details.open), false);
  assert.equal(await reloaded.locator('.reasoning-text').textContent(), parts[0].text);
  assert.match(await reloaded.locator('.body').textContent(), /Why is the sea salty\?/);
  // A question's message shows no reasoning.
  assert.equal(await page.locator('.message.user details.reasoning').count(), 0);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('a cited answer lists its sources under it, as they stream and again after a reload', async () => {
  const { page, context, problems } = await openPage(env('REASONING_URL'));
  await page.setInputFiles('#file-input', [{ name: 'meeting notes.txt', mimeType: 'text/plain', buffer: NOTES }]);
  await page.waitForFunction(() => document.querySelectorAll('#attachments .chip').length === 1);
  await sendMessage(page, 'What is the secret word?');
  const answer = await lastAnswer(page);
  const sources = answer.locator('aside.citations');
  await sources.waitFor();
  // Under the answer, headed, one numbered line: the answer's words, the passage, the document.
  assert.equal(await answer.evaluate((article) => article.querySelector('aside.citations').previousElementSibling.className), 'body');
  assert.equal(await sources.getAttribute('aria-label'), 'Sources');
  assert.equal(await sources.locator('.citations-heading').textContent(), 'Sources');
  // (The quotation marks are the <q> elements' own, drawn by the browser.)
  const lines = await sources.locator('li').allTextContents();
  assert.deepEqual(lines, ['The secret word is pelican. rests on The secret word is pelican. (meeting notes, characters 0–27)']);
  assert.equal(await sources.locator('li q').count(), 2);
  assert.match(await answer.locator('.body').textContent(), /The document “meeting notes” says: The secret word is pelican\./);
  const colours = await answer.evaluate((article) => [
    getComputedStyle(article.querySelector('aside.citations')).color,
    getComputedStyle(article.querySelector('.body')).color,
  ]);
  assert.notEqual(colours[0], colours[1], 'the sources are dimmed');
  const dir = env('SCREENSHOT_DIR');
  await page.screenshot({ path: path.join(dir, 'citations.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(dir, 'citations-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });

  // Stored with the answer's text part, and shown the same after a reload.
  const stored = await storedMessages(page);
  const text = stored[1].parts.find((part) => part.type === 'text');
  assert.equal(text.citations.length, 1);
  assert.equal(text.citations[0].cited_text, 'The secret word is pelican.');
  assert.deepEqual(text.citations[0].location, { kind: 'characters', document_index: 0, start: 0, end: 27 });
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  const reloaded = page.locator('.message.assistant').last();
  await reloaded.locator('aside.citations').waitFor();
  assert.deepEqual(await reloaded.locator('aside.citations li').allTextContents(), lines);
  // An answer without sources has no list; a question never has one.
  assert.equal(await page.locator('.message.user aside.citations').count(), 0);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

// --- tools ------------------------------------------------------------------------------------
// Run alone (`--test-name-pattern "^tool calls"`) by tool_calls_show_on_the_chat_page_... in
// browser.rs, which sets TOOLS_URL (the offline model with --tool current_time) and
// FAKE_TOOLS_URL (FakeBedrock with --tool current_time, its calls scripted by `@tool-rounds`).
const TOOLS = process.env.TOOLS_URL ? {} : { skip: 'TOOLS_URL is not set: run by the tool test in browser.rs' };

/**
 * Holds each `tool_result` event of the page's streamed answers back `delay` ms (so the
 * call shows running), and slips events of kinds the page does not know in front of them.
 * Stop still ends the answer at once, as it does a fetch of its own.
 */
async function tamperWithStreams(page, delay) {
  await page.evaluate((ms) => {
    const original = window.fetch;
    window.fetch = async (...args) => {
      const response = await original(...args);
      if (!String(args[0]).endsWith('/api/v1/chats/stream') || !response.ok) return response;
      const encoder = new TextEncoder();
      let buffer = 'event: from_the_future\ndata: {"text":"not for this page"}\n\nevent: constructor\ndata: {}\n\n';
      const body = response.body.pipeThrough(new TextDecoderStream()).pipeThrough(new TransformStream({
        start(controller) {
          args[1]?.signal?.addEventListener('abort', () => controller.error(new DOMException('stopped', 'AbortError')));
        },
        async transform(chunk, controller) {
          buffer += chunk;
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, end + 2);
            buffer = buffer.slice(end + 2);
            if (block.startsWith('event: tool_result')) await new Promise((resolve) => setTimeout(resolve, ms));
            controller.enqueue(encoder.encode(block));
          }
        },
        flush(controller) {
          if (buffer) controller.enqueue(encoder.encode(buffer));
        },
      }));
      return new Response(body, { status: response.status, headers: response.headers });
    };
  }, delay);
}

/** The tool lines of a message: state, summary, and the text of each term and value. */
async function toolLines(message) {
  return message.locator('details.tool').evaluateAll((lines) => lines.map((line) => ({
    state: line.dataset.state,
    open: line.open,
    summary: line.querySelector('summary').textContent,
    fields: [...line.querySelectorAll('dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]),
  })));
}

test('tool calls: current_time shows running, then folded with its input and output above the answer, and again after a reload', TOOLS, async () => {
  const { page, context, problems } = await openPage(env('TOOLS_URL'));
  await tamperWithStreams(page, 1500);
  await sendMessage(page, 'What is the current time?');

  // Running: a line with the tool's name and a spinner, before any answer text.
  const running = page.locator('.message.assistant details.tool.running');
  await running.waitFor();
  assert.equal(await running.locator('summary').textContent(), 'Used tool current_time running…');
  assert.equal(await running.locator('.tool-spinner').count(), 1);
  assert.equal(await page.locator('.message.assistant .body').textContent(), '');
  const dir = env('SCREENSHOT_DIR');
  await page.screenshot({ path: path.join(dir, 'tools-running.png') });

  const answer = await lastAnswer(page);
  const [line] = await toolLines(answer);
  assert.equal((await toolLines(answer)).length, 1, 'one call, one line');
  assert.equal(line.state, 'done');
  assert.equal(line.summary, 'Used tool current_time');
  assert.equal(line.open, false, 'folded at first');
  // Above the answer, which follows it.
  assert.deepEqual(
    await answer.evaluate((article) => [...article.children].map((child) => child.className)),
    ['visually-hidden', 'tools', 'body'],
  );
  assert.match(await answer.locator('.body').textContent(), /answering with what the tools returned: \{"now":/);

  const block = answer.locator('details.tool');
  await block.locator('summary').focus();
  await page.keyboard.press('Enter');
  assert.equal(await block.evaluate((details) => details.open), true, 'opened from the keyboard');
  const [opened] = await toolLines(answer);
  assert.deepEqual(opened.fields.map(([term]) => term), ['Input', 'Output']);
  assert.equal(opened.fields[0][1], '{}');
  const output = JSON.parse(opened.fields[1][1]);
  assert.match(output.now, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(opened.fields[1][1], /^\{\n {2}"now"/m, 'indented JSON');
  // Dimmed: the muted colour, not the answer's.
  const colours = await answer.evaluate((article) => [
    getComputedStyle(article.querySelector('details.tool')).color,
    getComputedStyle(article.querySelector('.body')).color,
  ]);
  assert.notEqual(colours[0], colours[1], 'the tool line is dimmed');
  await page.screenshot({ path: path.join(dir, 'tools.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(dir, 'tools-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 390, height: 780 });
  // Once the conversation list has slid away.
  await page.waitForFunction(() => getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden');
  await page.screenshot({ path: path.join(dir, 'tools-phone.png') });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, 'nothing wider than a phone');
  await page.setViewportSize({ width: 1200, height: 800 });

  // Stored as parts, and rebuilt from them after a reload.
  const parts = (await storedMessages(page))[1].parts;
  assert.deepEqual(parts.map((part) => part.type), ['tool_use', 'tool_result', 'text']);
  assert.equal(parts[1].tool_use_id, parts[0].id);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  const reloaded = page.locator('.message.assistant').last();
  await reloaded.locator('details.tool').waitFor({ state: 'attached' });
  const [again] = await toolLines(reloaded);
  assert.equal(again.summary, 'Used tool current_time');
  assert.equal(again.open, false);
  assert.deepEqual(JSON.parse(again.fields[1][1]), parts[1].output);
  assert.deepEqual(JSON.parse(again.fields[1][1]), output, 'the output the stream showed');
  assert.equal(await page.locator('.message.user details.tool').count(), 0, 'a question shows no tools');

  // Stopped while the tool runs: the call says it got no result.
  await tamperWithStreams(page, 60_000);
  await sendMessage(page, 'And the current time now?');
  await page.locator('.message.assistant details.tool.running').waitFor();
  await page.click('#stop');
  await page.waitForSelector('.message.assistant.stopped');
  const [stopped] = await toolLines(page.locator('.message.assistant').last());
  assert.equal(stopped.state, 'ended');
  assert.equal(stopped.summary, 'Used tool current_time no result');
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

test('tool calls: several in one answer get a line each under the reasoning, a failure is marked, and a reload pairs results by id', TOOLS, async () => {
  const { page, context, problems } = await openPage(env('FAKE_TOOLS_URL'));
  assert.equal(await control('tool-rounds'), 'ok');
  await sendMessage(page, 'What time is it here and on the far side of the world?');
  const answer = await lastAnswer(page);
  assert.equal(await control('check'), 'ok', 'every scripted round was used by this send');

  const check = async (message) => {
    const lines = await toolLines(message);
    assert.equal(lines.length, 2, 'a line a call');
    assert.equal(lines[0].state, 'done');
    assert.equal(lines[0].summary, 'Used tool current_time');
    assert.deepEqual(JSON.parse(lines[0].fields[0][1]), { utc_offset: '+02:00' });
    assert.match(JSON.parse(lines[0].fields[1][1]).now, /\+02:00$/);
    assert.equal(lines[1].state, 'failed');
    assert.match(lines[1].summary, /^⚠current_time failed: utc_offset `\+99:00` is not an offset like \+02:00/);
    assert.deepEqual(lines[1].fields.map(([term]) => term), ['Input', 'Error']);
    assert.match(lines[1].fields[1][1], /^utc_offset `\+99:00` is not an offset/, 'the message, not quoted JSON');
    // The reasoning (of the last round) above the calls, the answer under them.
    assert.deepEqual(
      await message.evaluate((article) => [...article.children].map((child) => child.className)),
      ['visually-hidden', 'reasoning', 'tools', 'body'],
    );
    assert.match(await message.locator('.body').textContent(), /One clock answered/);
  };
  await check(answer);
  const colours = await answer.evaluate((article) => [...article.querySelectorAll('details.tool summary')]
    .map((summary) => getComputedStyle(summary).color));
  assert.notEqual(colours[0], colours[1], 'the failure stands out');
  await answer.locator('details.tool.failed summary').click();
  const dir = env('SCREENSHOT_DIR');
  await page.screenshot({ path: path.join(dir, 'tools-failed.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(dir, 'tools-failed-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 390, height: 780 });
  await page.waitForFunction(() => getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden');
  await page.screenshot({ path: path.join(dir, 'tools-failed-phone.png') });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, 'the long failure wraps at phone width');
  await page.setViewportSize({ width: 1200, height: 800 });

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  const reloaded = page.locator('.message.assistant').last();
  await reloaded.locator('details.tool').first().waitFor({ state: 'attached' });
  await check(reloaded);
  assert.deepEqual(problems.errors, []);
  assert.deepEqual(unexpected(problems), []);
  await context.close();
});

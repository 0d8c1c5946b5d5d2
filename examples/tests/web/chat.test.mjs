// The chat page in headless Chromium, driven by playwright-core. Run by
// examples/tests/browser.rs, which starts the servers and the FakeBedrock model and sets:
//   CHAT_URL     the main server (SQLite store, FakeBedrock)
//   LIMITED_URL  a server allowing two requests a minute
//   KEYED_URL    a server with --auth api-key, and API_KEY a key it accepts
//   CHROMIUM     the browser binary; SCREENSHOT_DIR where screenshots go
// A line `@fault mid-stream` or `@slow-reply` on stdout asks the harness to script the
// model's next answer; it answers `ok` on stdin.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import readline from 'node:readline';
import path from 'node:path';
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

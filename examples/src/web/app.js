// The chat page: conversation list, messages, streamed answers, attachments, personas,
// usage. It talks to the server's own API (`/api/v1/...`) with the browser's identity
// cookie, or with the access token the person saved in this tab (API keys, JWT).
import { ACCEPT, Tray, attachmentList, describeRefusal, encode, releaseShown } from './attachments.js';
import { renderMarkdown } from './markdown.js';
import { reasoningOfParts, setReasoning } from './reasoning.js';
import { readEvents } from './sse.js';
import { addToolEvent, endToolCalls, setTools, toolsOfParts } from './tools.js';
import { citationsOfParts, setCitations } from './citations.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'bedrock-chat.token';
const PAGE = 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const state = {
  chatId: null, // the open conversation, null for a new one
  nextCursor: null, // where the conversation list continues
  listLoaded: false,
  listLoading: false,
  olderCursor: null, // where the open conversation's earlier messages continue
  olderLoading: false,
  stream: null, // the AbortController of the answer being streamed
  chatTokens: 0,
  openSeq: 0, // bumps on every open, so a slow load does not land in another chat
  tray: null, // the attachments waiting in the composer
};

// --- talking to the server ------------------------------------------------------------

/** An answer that was not a success, with what to tell the person. */
class RequestError extends Error {
  constructor(status, body, retryAfter) {
    super(describe(status, body, retryAfter));
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

function describe(status, body, retryAfter) {
  const wait = retryAfter ? ` Try again in ${retryAfter} s.` : ' Try again in a moment.';
  const detail = body?.message ? ` (${body.message})` : '';
  if (status === 0) return 'The server cannot be reached. Check that it is running and your connection, then try again.';
  if (status === 401) return 'The server needs credentials: set your API key or token under “Access token”.';
  if (status === 429 && body?.error === 'Token budget exhausted') return `You have used your token budget.${wait}`;
  if (status === 429) return `You are over the rate limit.${wait}`;
  if (body?.error === 'Model unavailable') return `The model is unavailable right now.${wait}`;
  if (body?.error === 'Model timeout') return `The model took too long to answer.${wait}`;
  if (body?.error === 'Model error') return `The model failed to answer${detail}.`;
  if (status === 503) return `The service is unavailable right now${detail}.${wait}`;
  if (status === 404) return 'That conversation no longer exists.';
  if (status === 415) return `That is not a supported file type${detail}.`;
  if (status === 400 || status === 413) return body?.message ?? 'The server did not accept that.';
  return `Something went wrong (HTTP ${status})${detail}.`;
}

function authHeaders(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: described by its status alone
  }
  const header = Number.parseInt(response.headers.get('retry-after') ?? '', 10);
  const retryAfter = Number.isFinite(header) ? header : body?.retry_after;
  return new RequestError(response.status, body, retryAfter);
}

async function call(method, path, body, signal) {
  const init = { method, headers: authHeaders(), signal };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new RequestError(0, null, null);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function api(method, path, body) {
  const response = await call(method, path, body);
  return response.status === 204 ? null : response.json();
}

/** A random v4 UUID (crypto.randomUUID needs a secure context; this does not). */
function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// --- notices ----------------------------------------------------------------------------

function showNotice(error) {
  $('notice-text').textContent = error instanceof Error ? error.message : String(error);
  $('notice').hidden = false;
  if (error?.status === 401) openSettings();
}

function clearNotice() {
  $('notice').hidden = true;
}

// --- the conversation list ----------------------------------------------------------------

function conversationItem(conversation) {
  const li = document.createElement('li');
  li.className = 'conversation';
  li.dataset.chatId = conversation.chat_id;

  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'conversation-open';
  open.textContent = conversation.title || 'Untitled';
  open.title = conversation.title || 'Untitled';
  open.addEventListener('click', () => openConversation(conversation.chat_id));

  const rename = document.createElement('button');
  rename.type = 'button';
  rename.className = 'icon';
  rename.textContent = '✎';
  rename.setAttribute('aria-label', `Rename “${conversation.title}”`);
  rename.addEventListener('click', () => startRename(li));

  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'icon';
  remove.textContent = '✕';
  remove.setAttribute('aria-label', `Delete “${conversation.title}”`);
  remove.addEventListener('click', () => deleteConversation(li));

  li.append(open, rename, remove);
  if (conversation.chat_id === state.chatId) li.setAttribute('aria-current', 'true');
  return li;
}

function itemOf(chatId) {
  return [...$('conversations').children].find((li) => li.dataset.chatId === chatId) ?? null;
}

/** Puts a conversation at the top of the list (it has the newest activity). */
function upsertConversation(conversation) {
  itemOf(conversation.chat_id)?.remove();
  $('conversations').prepend(conversationItem(conversation));
  $('conversations-empty').hidden = true;
}

async function loadConversations({ reset = false } = {}) {
  if (state.listLoading || (!reset && state.listLoaded && !state.nextCursor)) return;
  state.listLoading = true;
  try {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (!reset && state.nextCursor) query.set('cursor', state.nextCursor);
    const page = await api('GET', `/api/v1/conversations?${query}`);
    if (reset) $('conversations').replaceChildren();
    for (const conversation of page.conversations) {
      if (!itemOf(conversation.chat_id)) $('conversations').append(conversationItem(conversation));
    }
    state.nextCursor = page.next_cursor ?? null;
    state.listLoaded = true;
    $('conversations-more').hidden = !state.nextCursor;
    $('conversations-empty').hidden = $('conversations').children.length > 0;
  } catch (e) {
    showNotice(e);
  } finally {
    state.listLoading = false;
  }
}

function startRename(li) {
  const open = li.querySelector('.conversation-open');
  const before = open.textContent;
  const input = document.createElement('input');
  input.className = 'rename';
  input.value = before;
  input.maxLength = 200;
  input.setAttribute('aria-label', 'New title');
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    input.replaceWith(open);
    if (!save || !title || title === before) {
      open.focus();
      return;
    }
    try {
      const conversation = await api('PATCH', `/api/v1/conversations/${li.dataset.chatId}`, { title });
      li.replaceWith(conversationItem(conversation));
      if (conversation.chat_id === state.chatId) $('chat-title').textContent = conversation.title;
      itemOf(conversation.chat_id)?.querySelector('.conversation-open').focus();
    } catch (e) {
      showNotice(e);
    }
  };
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      finish(true);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
  open.replaceWith(input);
  input.focus();
  input.select();
}

function confirmDialog(text) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  $('confirm-ok').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

async function deleteConversation(li) {
  const title = li.querySelector('.conversation-open')?.textContent ?? 'this conversation';
  if (!(await confirmDialog(`Delete “${title}” and all its messages?`))) return;
  try {
    await api('DELETE', `/api/v1/conversations/${li.dataset.chatId}`);
    li.remove();
    $('conversations-empty').hidden = $('conversations').children.length > 0;
    if (li.dataset.chatId === state.chatId) newChat();
  } catch (e) {
    showNotice(e);
  }
}

// --- messages -----------------------------------------------------------------------------

/**
 * A message; `attachments` (parts or items just sent) are shown above its text, an answer's
 * `reasoning` and `tools` (its calls) folded above it and the `citations` of its sources under it.
 */
function messageElement(role, text, attachments = [], reasoning = '', tools = [], citations = []) {
  const article = document.createElement('article');
  article.className = `message ${role}`;
  const who = document.createElement('h2');
  who.className = 'visually-hidden';
  who.textContent = role === 'user' ? 'You said:' : 'Answer:';
  const body = document.createElement('div');
  body.className = 'body';
  article.append(who);
  if (attachments.length) article.append(attachmentList(attachments, { headers: authHeaders, viewer: openImage }));
  article.append(body);
  setText(article, text);
  setReasoning(article, reasoning);
  setTools(article, tools);
  setCitations(article, citations);
  return article;
}

/** The image viewer: an image at full size, with a link that saves it. */
function openImage(src, alt, fileName) {
  const image = $('image-full');
  image.src = src;
  image.alt = alt;
  $('image-title').textContent = alt;
  $('image-save').href = src;
  $('image-save').download = fileName;
  $('image-dialog').showModal();
  $('image-close').focus();
}

/** Shows `text` in a message: the person's own words as typed, answers as Markdown. */
function setText(article, text) {
  const body = article.querySelector('.body');
  article.dataset.text = text;
  if (article.classList.contains('user')) body.textContent = text;
  else body.replaceChildren(renderMarkdown(text));
}

function nearBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

function appendMessage(role, text, attachments = []) {
  const stick = nearBottom();
  const article = messageElement(role, text, attachments);
  $('message-list').append(article);
  $('welcome').hidden = true;
  if (stick || role === 'user') scrollToBottom();
  return article;
}

function addTokens(usage) {
  state.chatTokens += usage?.total_tokens ?? 0;
  showChatUsage();
}

function showChatUsage() {
  const n = state.chatTokens.toLocaleString();
  $('usage-chat').textContent = state.chatId
    ? `${n} tokens${state.olderCursor ? ' in the messages shown' : ' in this conversation'}`
    : '';
}

async function showUserUsage() {
  try {
    const usage = await api('GET', '/api/v1/usage');
    let text = `You: ${usage.today.total_tokens.toLocaleString()} tokens today, ${usage.usage.total_tokens.toLocaleString()} in all`;
    if (usage.budget) text += `; ${usage.budget.remaining.toLocaleString()} of ${usage.budget.limit.toLocaleString()} left in your budget`;
    $('usage-user').textContent = `${text}.`;
  } catch (e) {
    if (e.status === 401) showNotice(e);
    $('usage-user').textContent = '';
  }
}

function showPersona(conversation) {
  const persona = conversation?.metadata?.persona;
  const box = $('persona');
  if (!persona || !conversation.system_prompt) {
    box.hidden = true;
    return;
  }
  $('persona-name').textContent = `Persona: ${persona.name ?? conversation.title}`;
  $('persona-description').textContent = persona.description ?? '';
  $('persona-prompt').textContent = conversation.system_prompt;
  box.hidden = false;
}

function setOpen(chatId, title) {
  state.chatId = chatId;
  $('chat-title').textContent = title;
  document.title = chatId ? `${title} · bedrock-chat` : 'bedrock-chat';
  const hash = chatId ? `#${chatId}` : ' ';
  if (location.hash !== `#${chatId ?? ''}`) history.replaceState(null, '', hash.trim() || location.pathname);
  for (const li of $('conversations').children) {
    if (li.dataset.chatId === chatId) li.setAttribute('aria-current', 'true');
    else li.removeAttribute('aria-current');
  }
}

function stopStream() {
  state.stream?.abort();
}

function newChat() {
  stopStream();
  state.openSeq += 1;
  setOpen(null, 'New chat');
  $('message-list').replaceChildren();
  releaseShown();
  $('welcome').hidden = false;
  $('messages-more').hidden = true;
  state.olderCursor = null;
  state.chatTokens = 0;
  showChatUsage();
  showPersona(null);
  closeSidebar();
  $('input').focus();
}

async function openConversation(chatId) {
  stopStream();
  clearNotice();
  closeSidebar();
  const seq = ++state.openSeq;
  try {
    const [conversation, page] = await Promise.all([
      api('GET', `/api/v1/conversations/${chatId}`),
      api('GET', `/api/v1/conversations/${chatId}/messages?order=desc&limit=${PAGE}`),
    ]);
    if (seq !== state.openSeq) return;
    setOpen(chatId, conversation.title);
    showPersona(conversation);
    state.chatTokens = 0;
    state.olderCursor = page.next_cursor ?? null;
    releaseShown();
    $('message-list').replaceChildren(...page.items.reverse().map(messageOf));
    $('welcome').hidden = page.items.length > 0;
    $('messages-more').hidden = !state.olderCursor;
    showChatUsage();
    scrollToBottom();
    $('input').focus();
  } catch (e) {
    if (seq !== state.openSeq) return;
    showNotice(e);
    if (e.status === 404) {
      itemOf(chatId)?.remove();
      newChat();
    }
  }
}

function messageOf(message) {
  if (message.usage) state.chatTokens += message.usage.total_tokens;
  const attachments = (message.parts ?? []).filter((part) => part.type === 'image' || part.type === 'document');
  const role = message.role === 'user' ? 'user' : 'assistant';
  const { parts } = message;
  return messageElement(role, message.content, attachments, reasoningOfParts(parts), toolsOfParts(parts), citationsOfParts(parts));
}

/** Scrolling up to the top loads the page of messages before the first one shown. */
async function loadOlder() {
  if (!state.chatId || !state.olderCursor || state.olderLoading) return;
  state.olderLoading = true;
  const seq = state.openSeq;
  try {
    const query = new URLSearchParams({ order: 'desc', limit: String(PAGE), cursor: state.olderCursor });
    const page = await api('GET', `/api/v1/conversations/${state.chatId}/messages?${query}`);
    if (seq !== state.openSeq) return;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    $('message-list').prepend(...page.items.reverse().map(messageOf));
    box.scrollTop = box.scrollHeight - fromBottom;
    state.olderCursor = page.next_cursor ?? null;
    $('messages-more').hidden = !state.olderCursor;
    showChatUsage();
  } catch (e) {
    showNotice(e);
  } finally {
    state.olderLoading = false;
  }
}

// --- sending --------------------------------------------------------------------------------

function setStreaming(on) {
  $('send').hidden = on;
  $('stop').hidden = !on;
  $('messages').setAttribute('aria-busy', String(on));
}

/** A failed answer: what it had, why it failed, and a button that sends again. */
function markFailed(reply, message, retry) {
  reply.classList.add('failed');
  const note = document.createElement('p');
  note.className = 'failure';
  note.setAttribute('role', 'alert');
  note.textContent = message;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'retry';
  button.textContent = 'Retry';
  button.addEventListener('click', () => {
    note.remove();
    reply.classList.remove('failed');
    retry();
  });
  note.append(' ', button);
  reply.append(note);
  return button;
}

function markStopped(reply) {
  reply.classList.add('stopped');
  const note = document.createElement('p');
  note.className = 'muted stopped-note';
  note.textContent = 'Stopped. The whole answer is still saved: reopen the conversation to read it.';
  reply.append(note);
}

/**
 * Sends `text` with the attachment `items` and streams the answer into the page. A retry
 * passes the same message id, conversation and attachments, so the server never stores the
 * question twice. The items stay in the composer until the server has taken them.
 */
async function send(text, items = [], retry = null) {
  if (state.stream) return;
  clearNotice();
  const messageUid = retry?.messageUid ?? uuid4();
  const chatId = retry ? retry.chatId : state.chatId;
  const seq = state.openSeq;
  if (!retry) appendMessage('user', text, items);
  const reply = retry?.reply ?? appendMessage('assistant', '');
  reply.classList.add('pending');
  setText(reply, '');
  setReasoning(reply, '');
  setTools(reply, []);
  const controller = new AbortController();
  state.stream = controller;
  setStreaming(true);
  state.tray.setBusy(items.length > 0);

  let attachments = retry?.attachments ?? null;
  let answer = '';
  let reasoning = ''; // the model's reasoning, streamed before the answer
  const tools = []; // the tools it called, and what they returned, before the answer
  let citations = []; // the sources the answer cites, under it
  let started = chatId;
  let accepted = false;
  let frame = 0;
  const render = () => {
    frame = 0;
    const stick = nearBottom();
    setReasoning(reply, reasoning);
    setTools(reply, tools);
    setText(reply, answer);
    setCitations(reply, citations);
    if (stick) scrollToBottom();
  };
  try {
    if (!attachments && items.length) {
      try {
        attachments = await encode(items);
      } catch {
        throw new Error('An attachment could not be read (was the file moved or changed?): remove it and attach it again.');
      }
    }
    const body = { message: text, message_uid: messageUid };
    if (chatId) body.chat_id = chatId;
    if (attachments?.length) body.attachments = attachments;
    const response = await call('POST', '/api/v1/chats/stream', body, controller.signal);
    let done = null;
    await readEvents(response, (event, data) => {
      const payload = JSON.parse(data);
      if (event === 'start') {
        started = payload.chat_id;
        accepted = true;
        if (seq === state.openSeq && state.chatId !== started) setOpen(started, 'New chat');
      } else if (event === 'reasoning') {
        reasoning += payload.text;
        if (!frame) frame = requestAnimationFrame(render);
      } else if (event === 'tool_call' || event === 'tool_result') {
        addToolEvent(tools, event, payload);
        if (!frame) frame = requestAnimationFrame(render);
      } else if (event === 'delta') {
        answer += payload.text;
        reply.classList.remove('pending');
        if (!frame) frame = requestAnimationFrame(render);
      } else if (event === 'citation') {
        citations.push(payload);
        if (!frame) frame = requestAnimationFrame(render);
      } else if (event === 'done') {
        done = payload;
      } else if (event === 'error') {
        throw new RequestError(payload.status ?? 502, payload, payload.retry_after);
      }
    });
    if (!done) throw new RequestError(502, { message: 'the answer ended before it was complete' });
    if (frame) cancelAnimationFrame(frame);
    answer = done.response;
    reasoning = done.reasoning ?? reasoning;
    citations = done.citations ?? citations;
    render();
    reply.classList.remove('pending');
    addTokens(done.usage);
    state.tray.discard(items);
  } catch (e) {
    if (frame) cancelAnimationFrame(frame);
    endToolCalls(tools);
    render();
    reply.classList.remove('pending');
    if (e.name === 'AbortError') {
      markStopped(reply);
      // Stopped after the server took the question: it is stored, attachments and all.
      if (accepted) state.tray.discard(items);
      // The server stores the rest of the answer (and, for a new conversation, the
      // conversation) when the model finishes: list it once it is there.
      if (started) refreshConversation(started, [1000, 3000, 7000, 15000, 30000]);
    } else {
      controller.abort();
      // A failed send stores nothing: a new conversation does not exist yet, and the
      // retry (same message id) starts it again.
      if (!chatId) {
        if (seq === state.openSeq) setOpen(null, 'New chat');
        started = null;
      }
      const again = () => send(text, items, { messageUid, chatId, reply, attachments });
      const refusal = items.length && e instanceof RequestError ? describeRefusal(e, items.map((item) => item.name)) : null;
      markFailed(reply, refusal ?? e.message, again);
      if (e.status === 401) openSettings();
    }
  } finally {
    state.stream = null;
    setStreaming(false);
    state.tray.setBusy(false);
    if (started) refreshConversation(started);
    showUserUsage();
  }
}

/** Brings a conversation's list entry up to date, trying again after each of `delays`. */
async function refreshConversation(chatId, delays = []) {
  try {
    const conversation = await api('GET', `/api/v1/conversations/${chatId}`);
    upsertConversation(conversation);
    if (chatId === state.chatId) setOpen(chatId, conversation.title);
  } catch {
    const [delay, ...later] = delays;
    if (delay) setTimeout(() => refreshConversation(chatId, later), delay);
  }
}

// --- personas and settings -----------------------------------------------------------------

function openPersonaDialog() {
  $('persona-status').textContent = '';
  $('persona-create').disabled = false;
  $('persona-dialog').showModal();
  $('persona-input').focus();
}

async function createPersona(event) {
  event.preventDefault();
  const description = $('persona-input').value.trim();
  if (!description) {
    $('persona-status').textContent = 'Describe the persona first.';
    return;
  }
  $('persona-create').disabled = true;
  $('persona-status').textContent = 'The model is writing the persona…';
  try {
    const made = await api('POST', '/api/v1/personas', { description });
    $('persona-dialog').close();
    $('persona-input').value = '';
    await refreshConversation(made.chat_id);
    await openConversation(made.chat_id);
    showUserUsage();
  } catch (e) {
    $('persona-status').textContent = e.message;
  } finally {
    $('persona-create').disabled = false;
  }
}

function openSettings() {
  const dialog = $('settings-dialog');
  if (dialog.open) return;
  $('token-input').value = sessionStorage.getItem(TOKEN_KEY) ?? '';
  dialog.showModal();
  $('token-input').focus();
}

function saveToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  $('settings-dialog').close();
  clearNotice();
  state.nextCursor = null;
  newChat();
  loadConversations({ reset: true });
  showUserUsage();
}

// --- the narrow-screen drawer --------------------------------------------------------------

function openSidebar() {
  document.body.classList.add('sidebar-open');
  $('scrim').hidden = false;
  $('toggle-sidebar').setAttribute('aria-expanded', 'true');
  $('new-chat').focus();
}

function closeSidebar() {
  if (!document.body.classList.contains('sidebar-open')) return;
  document.body.classList.remove('sidebar-open');
  $('scrim').hidden = true;
  $('toggle-sidebar').setAttribute('aria-expanded', 'false');
}

// --- wiring ----------------------------------------------------------------------------------

function autosize() {
  const input = $('input');
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function submit() {
  const text = $('input').value;
  if (state.stream) return;
  const items = [...state.tray.items];
  if (!text.trim()) {
    if (items.length) showNotice('Write a message to send with the attachments.');
    return;
  }
  $('input').value = '';
  autosize();
  send(text, items);
}

/** Queues files picked, dropped or pasted; says what was not taken and why. */
function addFiles(files) {
  const problems = state.tray.add([...files]);
  if (problems.length) showNotice(problems.join(' '));
  else clearNotice();
}

const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');

/** Files dropped on the composer or pasted into the message box are attached. */
function wireAttachments() {
  state.tray = new Tray($('attachments'));
  const picker = $('file-input');
  picker.accept = ACCEPT;
  $('attach').addEventListener('click', () => picker.click());
  picker.addEventListener('change', () => {
    addFiles(picker.files);
    picker.value = '';
    $('input').focus();
  });

  const composer = $('composer');
  let depth = 0; // dragenter / dragleave also fire for the composer's children
  composer.addEventListener('dragenter', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    composer.classList.add('dropping');
  });
  composer.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) composer.classList.remove('dropping');
  });
  composer.addEventListener('dragover', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  composer.addEventListener('drop', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    composer.classList.remove('dropping');
    addFiles(event.dataTransfer.files);
  });
  // A file dropped beside the composer would replace the page with itself: refuse it.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (event) => {
      if (!carriesFiles(event) || event.defaultPrevented) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'none';
    });
  }
  $('input').addEventListener('paste', (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (!files.length) return;
    addFiles(files);
    // A copied image may come with its text (a name, an address): paste that as usual.
    if (!event.clipboardData.getData('text/plain')) event.preventDefault();
  });

  $('image-close').addEventListener('click', () => $('image-dialog').close());
  // A click on the backdrop (outside the dialog's box) closes it too.
  $('image-dialog').addEventListener('click', (event) => {
    const box = $('image-dialog').getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right
      && event.clientY >= box.top && event.clientY <= box.bottom;
    if (!inside) $('image-dialog').close();
  });
}

function wire() {
  wireAttachments();
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  $('input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  $('input').addEventListener('input', autosize);
  $('stop').addEventListener('click', stopStream);
  $('new-chat').addEventListener('click', newChat);
  $('new-persona').addEventListener('click', openPersonaDialog);
  $('persona-form').addEventListener('submit', createPersona);
  $('persona-cancel').addEventListener('click', () => $('persona-dialog').close());
  $('open-settings').addEventListener('click', openSettings);
  $('settings-form').addEventListener('submit', (event) => {
    event.preventDefault();
    saveToken($('token-input').value.trim());
  });
  $('settings-cancel').addEventListener('click', () => $('settings-dialog').close());
  $('token-clear').addEventListener('click', () => saveToken(''));
  $('notice-close').addEventListener('click', clearNotice);
  $('toggle-sidebar').addEventListener('click', () => {
    if (document.body.classList.contains('sidebar-open')) closeSidebar();
    else openSidebar();
  });
  $('scrim').addEventListener('click', closeSidebar);
  document.addEventListener('keydown', (event) => {
    // Escape in a dialog closes the dialog only.
    if (event.key !== 'Escape' || document.querySelector('dialog[open]')) return;
    if (state.stream) stopStream();
    else closeSidebar();
  });
  $('messages').addEventListener('scroll', () => {
    if ($('messages').scrollTop < 120) loadOlder();
  });
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadConversations();
  }).observe($('conversations-more'));
  window.addEventListener('hashchange', () => {
    const id = location.hash.slice(1);
    if (UUID.test(id) && id !== state.chatId) openConversation(id);
  });
}

async function start() {
  wire();
  await loadConversations({ reset: true });
  const id = location.hash.slice(1);
  if (UUID.test(id)) await openConversation(id);
  else newChat();
  showUserUsage();
  document.body.dataset.ready = 'true';
}

start();

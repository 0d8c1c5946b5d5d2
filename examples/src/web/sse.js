// Server-Sent Events from a fetch() response (EventSource cannot POST): calls
// `onEvent(name, data)` for each event as its blank line arrives. Comments (`: keep-alive`)
// are skipped; several `data:` lines are joined with newlines, as the SSE standard says.

/** Reads `response.body` to its end, dispatching each event. */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    for (;;) {
      const end = buffer.search(/\r?\n\r?\n|\r\r/);
      if (end < 0) break;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^(\r?\n\r?\n|\r\r)/, '');
      dispatch(block, onEvent);
    }
  }
  if (buffer.trim()) dispatch(buffer, onEvent);
}

function dispatch(block, onEvent) {
  let event = 'message';
  const data = [];
  for (const line of block.split(/\r?\n|\r/)) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length) onEvent(event, data.join('\n'));
}

// Server-sent events over fetch(): EventSource cannot send the Authorization header.

import { errorOf, headers } from "./api.js";

/** Splits an event stream's text into events; returns [events, rest]. */
export function parseEvents(buffer) {
  const events = [];
  const text = buffer.replace(/\r\n?/g, "\n");
  const blocks = text.split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ name, data: data.join("\n") });
  }
  return [events, rest];
}

/**
 * Watches `path` until closed: calls onEvent(name, data) per event and onState(state,
 * detail) with "connecting", "live", "retrying" or "refused". Reconnects after a
 * broken stream (1 s, doubling to 8 s); stops on a 4xx (onState "refused", the
 * ApiError as detail).
 */
export function watch(path, { onEvent, onState }) {
  const abort = new AbortController();
  let delay = 1000;
  let closed = false;

  async function once() {
    onState("connecting");
    const r = await fetch(path, {
      headers: headers({ Accept: "text/event-stream" }),
      signal: abort.signal,
      cache: "no-store",
    });
    if (!r.ok) {
      const e = await errorOf(r);
      if (r.status >= 400 && r.status < 500) {
        onState("refused", e);
        return false;
      }
      throw e;
    }
    onState("live");
    delay = 1000;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value;
      const [events, rest] = parseEvents(buffer);
      buffer = rest;
      for (const ev of events) onEvent(ev.name, ev.data);
    }
  }

  (async () => {
    while (!closed) {
      let again = true;
      try {
        again = await once();
      } catch (e) {
        if (closed) return;
        onState("retrying", e);
      }
      if (!again || closed) return;
      onState("retrying");
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 8000);
    }
  })();

  return {
    close() {
      closed = true;
      abort.abort();
    },
  };
}

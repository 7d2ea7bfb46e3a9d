// Short confirmations ("Alert created.") and problems that have no field to sit next to, shown
// briefly at the bottom of the screen and read out by screen readers.

import { signal } from '@preact/signals';

const message = signal<{ text: string; kind: 'info' | 'error'; id: number } | undefined>(undefined);
let next = 0;

export function announce(text: string, kind: 'info' | 'error' = 'info') {
  const id = ++next;
  message.value = { text, kind, id };
  setTimeout(() => {
    if (message.value?.id === id) message.value = undefined;
  }, 4_000);
}

export function Announcer() {
  const current = message.value;
  return (
    <div class="announcer" role="status" aria-live="polite">
      {current && <p class={`snackbar ${current.kind}`}>{current.text}</p>}
    </div>
  );
}

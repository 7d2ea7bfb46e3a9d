// A WebSocket that stays connected: it reconnects with jittered exponential back-off after any
// close, waits for the browser to be online again, and lets its owner resubscribe on every open.
// The app's sockets share one origin: once one of them is back, the others stop waiting.

import { signal } from '@preact/signals';

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'offline';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 15_000;

export interface SocketHandlers {
  /** Runs on every (re)connection, before anything else is sent: subscribe here. */
  opened(send: (message: unknown) => void): void;
  message(data: any): void;
}

export class LiveSocket {
  /** Every socket of the page, so one that gets back in can wake the others. */
  private static readonly all: LiveSocket[] = [];
  readonly state = signal<Connection>('connecting');
  private socket?: WebSocket;
  private attempt = 0;
  private retry?: ReturnType<typeof setTimeout>;
  private running = false;
  private everOpened = false;

  constructor(
    private readonly path: string,
    private readonly handlers: SocketHandlers,
  ) {
    LiveSocket.all.push(this);
    window.addEventListener('online', () => this.running && this.reconnectNow());
    window.addEventListener('offline', () => {
      if (this.running) this.state.value = 'offline';
    });
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.retry);
    this.socket?.close();
    this.socket = undefined;
    this.everOpened = false;
    this.state.value = 'connecting';
  }

  /** Sends when connected; otherwise the next `opened` resends what matters. */
  send(message: unknown) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private reconnectNow() {
    clearTimeout(this.retry);
    this.attempt = 0;
    if (!this.socket || this.socket.readyState === WebSocket.CLOSED) this.connect();
  }

  private connect() {
    if (!navigator.onLine) {
      this.state.value = 'offline';
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}${this.path}`);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.everOpened = true;
      this.state.value = 'live';
      this.handlers.opened((m) => socket.send(JSON.stringify(m)));
      // The server is back: a socket of this page still backing off tries again now.
      for (const other of LiveSocket.all) {
        if (other !== this && other.running && !other.socket) other.reconnectNow();
      }
    };
    socket.onmessage = (event) => {
      try {
        this.handlers.message(JSON.parse(event.data));
      } catch {
        // Not JSON: nothing this app sends asks for it.
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket || !this.running) return;
      this.socket = undefined;
      this.state.value = navigator.onLine ? (this.everOpened ? 'reconnecting' : 'connecting') : 'offline';
      this.schedule();
    };
  }

  private schedule() {
    if (!navigator.onLine) return; // the `online` event reconnects
    const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Full jitter: many tabs reconnecting after a restart spread out instead of arriving at once.
    const wait = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retry = setTimeout(() => this.running && this.connect(), wait);
  }
}

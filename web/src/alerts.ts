// Alerts as they happen: the alert socket, a toast with a sound for each new alert on every
// page, a system notification once the person allows it, the unread badge, and an
// acknowledgement for every alert shown, so a reconnect replays only what was not yet seen.

import { signal } from '@preact/signals';
import { get, type Alert, type AlertPage } from './api';
import { describeAlert, learnNames } from './format';
import { navigate } from './nav';
import { sound } from './prefs';
import { LiveSocket } from './socket';

export type Toast =
  | { kind: 'alert'; id: string; alert: Alert; replayed: boolean }
  /** Many alerts delivered at once after being away: one toast pointing to the history. */
  | { kind: 'missed'; id: string; count: number };

const TOAST_MS = 8_000;
/** More replayed alerts than this in one burst become one "while you were away" toast. */
const REPLAY_TOASTS = 3;
/** Replayed alerts arriving within this of each other are one burst. */
const BURST_MS = 300;
/** Toasts on screen at once; older ones make way. */
const MAX_TOASTS = 4;
const PING_EVERY_MS = 25_000;
const UNREAD_PAGE = 100;

export const toasts = signal<Toast[]>([]);
/** Unread alerts; `more` when there are more than a page of them. */
export const unread = signal<{ count: number; more: boolean }>({ count: 0, more: false });
/** Bumped on every new alert, so pages that list alerts or rules can refresh. */
export const alertsArrived = signal(0);

/** Alerts shown on this page already: one alert is never shown twice. */
const shown = new Set<number>();
let ping: ReturnType<typeof setInterval> | undefined;

export const alertSocket = new LiveSocket('/api/v1/alerts/stream', {
  opened(send) {
    clearInterval(ping);
    // Keeps idle proxies from closing the socket, and finds a dead one.
    ping = setInterval(() => send({ type: 'ping' }), PING_EVERY_MS);
    refreshUnread();
  },
  message(data) {
    if (data?.type !== 'alert' || typeof data.id !== 'number') return;
    receive(data as Alert, Boolean(data.replayed));
  },
});

let burst: Alert[] = [];
let burstTimer: ReturnType<typeof setTimeout> | undefined;

function receive(alert: Alert, replayed: boolean) {
  // Whatever happens below, the server learns this page has it.
  alertSocket.send({ type: 'ack', id: alert.id });
  if (shown.has(alert.id)) return;
  shown.add(alert.id);
  alertsArrived.value += 1;
  refreshUnread();
  void learnNames([alert.instrument]);
  if (!replayed) {
    show({ kind: 'alert', id: `alert-${alert.id}`, alert, replayed });
    chime();
    notify(alert);
    return;
  }
  // What came while the page was away arrives as a backlog on connecting.
  burst.push(alert);
  clearTimeout(burstTimer);
  burstTimer = setTimeout(() => {
    const missed = burst;
    burst = [];
    if (missed.length > REPLAY_TOASTS) {
      show({ kind: 'missed', id: `missed-${missed[missed.length - 1].id}`, count: missed.length });
    } else {
      missed.forEach((a) => show({ kind: 'alert', id: `alert-${a.id}`, alert: a, replayed: true }));
    }
    chime();
  }, BURST_MS);
}

function show(toast: Toast) {
  toasts.value = [...toasts.value, toast].slice(-MAX_TOASTS);
  setTimeout(() => dismiss(toast.id), TOAST_MS);
}

export function dismiss(id: string) {
  toasts.value = toasts.value.filter((t) => t.id !== id);
}

let refreshing: ReturnType<typeof setTimeout> | undefined;
/** Re-reads the unread count from the server (coalesced: a burst of alerts asks once). */
export function refreshUnread() {
  clearTimeout(refreshing);
  refreshing = setTimeout(async () => {
    try {
      const page = await get<AlertPage>(`/api/v1/alerts?read=false&limit=${UNREAD_PAGE}`);
      unread.value = { count: page.items.length, more: Boolean(page.nextBefore) };
    } catch {
      // Shown again on the next alert or reconnect.
    }
  }, 150);
}

// Browsers let a page make sound only after the person has interacted with it.
let audio: AudioContext | undefined;
function unlockAudio() {
  if (!audio) {
    try {
      audio = new AudioContext();
    } catch {
      return;
    }
  }
  if (audio.state === 'suspended') void audio.resume();
}
window.addEventListener('pointerdown', unlockAudio, { passive: true });
window.addEventListener('keydown', unlockAudio);

/** Two short rising tones. */
function chime() {
  if (sound.value === 'off' || !audio || audio.state !== 'running') return;
  const start = audio.currentTime;
  [880, 1320].forEach((frequency, i) => {
    const oscillator = audio!.createOscillator();
    const gain = audio!.createGain();
    oscillator.frequency.value = frequency;
    const at = start + i * 0.16;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.15);
    oscillator.connect(gain).connect(audio!.destination);
    oscillator.start(at);
    oscillator.stop(at + 0.16);
  });
}

export const notificationPermission = signal<NotificationPermission | 'unsupported'>(
  'Notification' in window ? Notification.permission : 'unsupported',
);

export async function askNotificationPermission() {
  if (!('Notification' in window)) return;
  notificationPermission.value = await Notification.requestPermission();
}

/** A system notification when the page is not in front (the toast covers the rest). */
function notify(alert: Alert) {
  if (notificationPermission.value !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  try {
    const { title, body } = describeAlert(alert);
    const notification = new Notification(title, { body, tag: `alert-${alert.id}` });
    notification.onclick = () => {
      window.focus();
      navigate(`/i/${encodeURIComponent(alert.instrument)}`);
      notification.close();
    };
  } catch {
    // Some browsers allow notifications only from a service worker.
  }
}

export function resetAlerts() {
  shown.clear();
  burst = [];
  clearTimeout(burstTimer);
  toasts.value = [];
  unread.value = { count: 0, more: false };
  clearInterval(ping);
}

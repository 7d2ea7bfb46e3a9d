// The service worker: shows each web push message as a notification (the server writes its
// title and body in the person's language: instrument, condition and price) and opens the
// instrument's page when the notification is clicked. Push messages arrive with the tab closed.
// A notification about one alert carries actions that snooze its rule: each opens the app's
// snooze page, which asks the rule API as the signed-in person (the worker holds no credentials).
//
// Typed by hand with what it uses: the worker's own library cannot sit beside the page's (DOM)
// in one type check.

interface SnoozeAction {
  action: string;
  title: string;
  url: string;
}

interface PushPayload {
  title: string;
  body: string;
  url: string;
  tag: string;
  snooze?: SnoozeAction[];
}

interface Waiting extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface PushMessage extends Waiting {
  data: { json(): unknown } | null;
}
interface NotificationClick extends Waiting {
  notification: Notification;
  /** The action button clicked; empty for the notification itself. */
  action: string;
}
interface WindowClient {
  url: string;
  focus(): Promise<unknown>;
  navigate(url: string): Promise<unknown>;
}
interface Worker {
  location: Location;
  registration: ServiceWorkerRegistration;
  clients: {
    claim(): Promise<void>;
    matchAll(options: { type: 'window'; includeUncontrolled: boolean }): Promise<WindowClient[]>;
    openWindow(url: string): Promise<unknown>;
  };
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', listener: (event: Waiting) => void): void;
  addEventListener(type: 'push', listener: (event: PushMessage) => void): void;
  addEventListener(type: 'notificationclick', listener: (event: NotificationClick) => void): void;
}

const worker = self as unknown as Worker;

worker.addEventListener('install', () => {
  void worker.skipWaiting();
});

worker.addEventListener('activate', (event) => {
  event.waitUntil(worker.clients.claim());
});

worker.addEventListener('push', (event) => {
  let payload: PushPayload | undefined;
  try {
    payload = event.data?.json() as PushPayload | undefined;
  } catch {
    return;
  }
  if (!payload?.title) return;
  const snooze = payload.snooze ?? [];
  // `actions` is a service-worker notification option the page's DOM types do not list.
  const options = {
    body: payload.body,
    tag: payload.tag,
    icon: '/icon.svg',
    data: { url: payload.url, snooze },
    actions: snooze.map(({ action, title }) => ({ action, title })),
  } as NotificationOptions;
  event.waitUntil(worker.registration.showNotification(payload.title, options));
});

worker.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data as { url?: string; snooze?: SnoozeAction[] } | undefined;
  const chosen = data?.snooze?.find((snooze) => snooze.action === event.action);
  // The page of the link, on this origin: the app opens nothing else.
  const link = new URL(chosen?.url ?? data?.url ?? '/', worker.location.origin);
  const url = new URL(link.pathname + link.search + link.hash, worker.location.origin).href;
  event.waitUntil(
    worker.clients.matchAll({ type: 'window', includeUncontrolled: true }).then(async (windows) => {
      const open = windows.find((client) => new URL(client.url).origin === worker.location.origin);
      if (open) {
        await open.focus();
        await open.navigate(url);
      } else {
        await worker.clients.openWindow(url);
      }
    }),
  );
});

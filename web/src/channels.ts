// Where alerts reach a person beyond this tab: web push (this browser, through the service
// worker), webhooks, Telegram and email. The server keeps the channels and their deliveries;
// this module talks to it and to the browser's push manager.

import { del, get, patch, post } from './api';

export type ChannelKind = 'web_push' | 'webhook' | 'telegram' | 'email';

export interface Channel {
  id: number;
  kind: ChannelKind;
  name: string;
  state: 'active' | 'pending' | 'disabled';
  disabledReason?: string;
  url?: string;
  template?: string;
  endpoint?: string;
  linked?: boolean;
  address?: string;
}

/** A new channel, with what the server shows only once. */
export interface Created extends Channel {
  secret?: string;
  link?: string;
  linkExpiresAt?: string;
}

export interface Delivery {
  id: number;
  status: 'pending' | 'delivered' | 'failed' | 'skipped';
  attempts: number;
  digest: boolean;
  test: boolean;
  lastError?: string;
  createdAt: string;
  deliveredAt?: string;
  latencyMs?: number;
}

export const listChannels = () => get<{ items: Channel[]; available: ChannelKind[] }>('/api/v1/channels');
export const createChannel = (body: Record<string, unknown>) => post<Created>('/api/v1/channels', body);
export const removeChannel = (id: number) => del<void>(`/api/v1/channels/${id}`);
export const enableChannel = (id: number, enabled: boolean) => patch<Channel>(`/api/v1/channels/${id}`, { enabled });
export const sendTest = (id: number) => post<Delivery>(`/api/v1/channels/${id}/test`);
export const rotateSecret = (id: number) => post<{ secret: string }>(`/api/v1/channels/${id}/rotate-secret`);
export const recentDeliveries = (id: number) =>
  get<{ items: Delivery[] }>(`/api/v1/channels/${id}/deliveries?limit=5`).then((page) => page.items);

export const pushSupported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

/** The app's service worker, registered once per page. */
export function serviceWorker(): Promise<ServiceWorkerRegistration> {
  return navigator.serviceWorker.register('/sw.js', { scope: '/' }).then(() => navigator.serviceWorker.ready);
}

/**
 * Subscribes this browser to push messages and stores the subscription as a channel (the same
 * subscription again renews its channel). Asks for permission to notify first.
 */
export async function addThisBrowser(name: string): Promise<Created> {
  if ((await Notification.requestPermission()) !== 'granted') throw new Error('permission');
  const registration = await serviceWorker();
  const { publicKey } = await get<{ publicKey: string }>('/api/v1/push/vapid-public-key');
  const subscription =
    (await registration.pushManager.getSubscription()) ??
    (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: publicKey }));
  return createChannel({ kind: 'web_push', name, subscription: subscription.toJSON() });
}

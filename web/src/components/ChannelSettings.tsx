// The settings page's channels: where alerts go besides this tab. Each channel shows its state
// (and why it was turned off), can send a test and shows its recent deliveries; a new webhook's
// secret and a Telegram link are shown once, right after they are made.

import { useEffect, useState } from 'preact/hooks';
import {
  addThisBrowser,
  createChannel,
  enableChannel,
  listChannels,
  pushSupported,
  recentDeliveries,
  removeChannel,
  rotateSecret,
  sendTest,
  type Channel,
  type ChannelKind,
  type Created,
  type Delivery,
} from '../channels';
import { announce } from './Announcer';
import { Field, FormProblem, TextField, useProblems } from './Field';
import { t, type Key } from '../i18n';

const FIELDS = ['url', 'template', 'address', 'name'] as const;

function target(channel: Channel): string {
  return channel.url ?? channel.address ?? (channel.kind === 'telegram' ? t(channel.linked ? 'channels.linked' : 'channels.notLinked') : channel.name);
}

function Deliveries({ channel, version }: { channel: Channel; version: number }) {
  const [items, setItems] = useState<Delivery[] | null>(null);
  useEffect(() => {
    recentDeliveries(channel.id).then(setItems, () => setItems([]));
  }, [channel.id, version]);
  if (!items) return null;
  if (items.length === 0) return <p class="hint">{t('channels.noDeliveries')}</p>;
  return (
    <ul class="deliveries">
      {items.map((d) => (
        <li key={d.id} data-status={d.status}>
          {new Date(d.deliveredAt ?? d.createdAt).toLocaleString()} · {t(`delivery.${d.status}` as Key)}
          {d.test ? ` · ${t('channels.test')}` : ''}
          {d.digest ? ` · ${t('channels.digest')}` : ''}
          {d.attempts > 1 ? ` · ${t('channels.attempts', { n: d.attempts })}` : ''}
          {d.lastError && d.status !== 'delivered' ? ` · ${d.lastError}` : ''}
        </li>
      ))}
    </ul>
  );
}

function ChannelItem({ channel, changed }: { channel: Channel; changed: () => void }) {
  const [version, setVersion] = useState(0);
  const [secret, setSecret] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const act = async (action: () => Promise<unknown>, done?: Key) => {
    setProblem(null);
    try {
      await action();
      if (done) announce(t(done));
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
    }
    setVersion((v) => v + 1);
    changed();
  };
  return (
    <li class="channel" data-kind={channel.kind} data-state={channel.state}>
      <div class="channel-head">
        <strong>{t(`channel.${channel.kind}` as Key)}</strong> <span class="channel-target">{target(channel)}</span>{' '}
        <span class="channel-state">{t(`channelState.${channel.state}` as Key)}</span>
      </div>
      {channel.disabledReason && <p class="problem">{channel.disabledReason}</p>}
      {secret && (
        <p class="secret">
          {t('channels.secretOnce')} <code>{secret}</code>
        </p>
      )}
      {problem && <p class="problem">{problem}</p>}
      <div class="row-actions">
        {channel.state === 'active' && (
          <button type="button" onClick={() => act(() => sendTest(channel.id), 'channels.testSent')}>
            {t('channels.sendTest')}
          </button>
        )}
        {channel.state === 'disabled' && (
          <button type="button" onClick={() => act(() => enableChannel(channel.id, true))}>
            {t('channels.enable')}
          </button>
        )}
        {channel.kind === 'webhook' && (
          <button type="button" onClick={() => act(() => rotateSecret(channel.id).then((s) => setSecret(s.secret)))}>
            {t('channels.rotate')}
          </button>
        )}
        <button type="button" class="danger" onClick={() => act(() => removeChannel(channel.id), 'channels.removed')}>
          {t('delete')}
        </button>
      </div>
      <details>
        <summary>{t('channels.recent')}</summary>
        <Deliveries channel={channel} version={version} />
      </details>
    </li>
  );
}

function AddChannel({ available, added }: { available: ChannelKind[]; added: (created: Created) => void }) {
  const [kind, setKind] = useState<ChannelKind>(available[0]);
  const [url, setUrl] = useState('');
  const [template, setTemplate] = useState('');
  const [address, setAddress] = useState('');
  const [busy, setBusy] = useState(false);
  const { problems, show, clear } = useProblems(FIELDS);
  const submit = async (e: Event) => {
    e.preventDefault();
    clear();
    setBusy(true);
    try {
      const created =
        kind === 'web_push'
          ? await addThisBrowser(navigator.userAgent.slice(0, 100))
          : await createChannel(
              kind === 'webhook'
                ? { kind, url, template: template.trim() ? template : null }
                : kind === 'email'
                  ? { kind, address }
                  : { kind },
            );
      setUrl('');
      setTemplate('');
      setAddress('');
      added(created);
    } catch (error) {
      show(error instanceof Error && error.message === 'permission' ? t('alerts.notifyDenied') : error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} noValidate class="channel-form">
      <h3>{t('channels.add')}</h3>
      <Field id="channel-kind" label={t('channels.kind')}>
        {() => (
          <select id="channel-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as ChannelKind)}>
            {available
              .filter((k) => k !== 'web_push' || pushSupported())
              .map((k) => (
                <option key={k} value={k}>
                  {t(`channel.${k}` as Key)}
                </option>
              ))}
          </select>
        )}
      </Field>
      {kind === 'webhook' && (
        <>
          <TextField id="channel-url" label={t('channels.url')} problem={problems.url} value={url} onValue={setUrl} />
          <Field id="channel-template" label={t('channels.template')} hint={t('channels.templateHint')} problem={problems.template}>
            {(describedBy, invalid) => (
              <textarea
                id="channel-template"
                rows={3}
                value={template}
                aria-describedby={describedBy}
                aria-invalid={invalid}
                onInput={(e) => setTemplate((e.target as HTMLTextAreaElement).value)}
              />
            )}
          </Field>
        </>
      )}
      {kind === 'email' && (
        <TextField id="channel-address" type="email" label={t('auth.email')} problem={problems.address} value={address} onValue={setAddress} />
      )}
      {kind === 'telegram' && <p class="hint">{t('channels.telegramHint')}</p>}
      {kind === 'web_push' && <p class="hint">{t('channels.pushHint')}</p>}
      <FormProblem problem={problems.form ?? problems.name} />
      <button type="submit" disabled={busy}>
        {kind === 'web_push' ? t('channels.addBrowser') : t('channels.add')}
      </button>
    </form>
  );
}

export function ChannelSettings() {
  const [channels, setChannels] = useState<Channel[] | null>(null);
  const [available, setAvailable] = useState<ChannelKind[]>([]);
  const [created, setCreated] = useState<Created | null>(null);
  const [failed, setFailed] = useState(false);
  const load = () =>
    listChannels().then(
      (list) => {
        setChannels(list.items);
        setAvailable(list.available);
        setFailed(false);
      },
      () => setFailed(true),
    );
  useEffect(() => {
    void load();
  }, []);
  return (
    <section class="card" aria-labelledby="channels-title">
      <h2 id="channels-title">{t('channels.title')}</h2>
      <p class="hint">{t('channels.intro')}</p>
      {failed && <p class="problem">{t('networkError')}</p>}
      {created?.secret && (
        <p class="secret" role="status">
          {t('channels.secretOnce')} <code>{created.secret}</code>
        </p>
      )}
      {created?.link && (
        <p class="secret" role="status">
          {t('channels.openLink')}{' '}
          <a href={created.link} target="_blank" rel="noopener noreferrer">
            {created.link}
          </a>
        </p>
      )}
      {created?.kind === 'email' && <p role="status">{t('channels.confirmMail')}</p>}
      {channels && channels.length > 0 && (
        <ul class="channels">
          {channels.map((channel) => (
            <ChannelItem key={channel.id} channel={channel} changed={load} />
          ))}
        </ul>
      )}
      {channels && available.length > 0 && (
        <AddChannel
          available={available}
          added={(c) => {
            setCreated(c);
            announce(t('channels.added'));
            void load();
          }}
        />
      )}
    </section>
  );
}

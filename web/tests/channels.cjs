// Notification channels in real Chromium, as a person sets them up. Run by
// crates/signal/tests/browser.rs over the same stand-ins as browser.cjs, plus:
//   DONTOUCH_PUSH_URL           the web push service stand-in (it decrypts what it is sent)
//   DONTOUCH_PUSH_SUBSCRIPTION  a subscription the stand-in made, with its keys: headless Chromium
//                               has no push service of its own, so the page's PushManager answers
//                               with this one
//   DONTOUCH_WEBHOOK_URL        the Standard Webhooks receiver stand-in
// The person adds this browser and a webhook in the settings, sends a test, sees the delivery,
// makes a rule that uses both, closes every tab of the app; the alert still reaches both, the
// service worker shows the push as a notification with its snooze actions, and the snooze page
// an action opens snoozes the rule.

'use strict';

const { chromium } = require('playwright-core');
const { ARRIVES, check, step, until, accessible } = require('./support.cjs');

const APP = process.env.DONTOUCH_APP_URL;
const CONTROL = process.env.DONTOUCH_CONTROL_URL;
const PUSH = process.env.DONTOUCH_PUSH_URL;
const WEBHOOK = process.env.DONTOUCH_WEBHOOK_URL;
const SUBSCRIPTION = JSON.parse(process.env.DONTOUCH_PUSH_SUBSCRIPTION);
const SAMSUNG = 'KRX:005930';

async function postJson(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  check(response.ok, `${url} answered ${response.status}: ${await response.text()}`);
}

const standInState = (base) => fetch(`${base}/_control/state`).then((r) => r.json());

/** The app's own API, as the signed-in page calls it. */
const api = (page, path) => page.evaluate((path) => fetch(path).then((r) => r.json()), path);

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const errors = [];
  try {
    const context = await browser.newContext({ locale: 'en-US', timezoneId: 'Asia/Seoul', viewport: { width: 1280, height: 860 } });
    await context.grantPermissions(['notifications'], { origin: APP });
    await context.addInitScript((subscription) => {
      let subscribed = false;
      const made = { endpoint: subscription.endpoint, expirationTime: null, toJSON: () => subscription };
      PushManager.prototype.subscribe = async () => {
        subscribed = true;
        return made;
      };
      PushManager.prototype.getSubscription = async () => (subscribed ? made : null);
    }, SUBSCRIPTION);
    const page = await context.newPage();
    page.setDefaultTimeout(ARRIVES);
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      if (/Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())) return;
      errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(`uncaught ${error.message}`));

    step('a new person signs up');
    await page.goto(`${APP}/signup`);
    await page.locator('#email').fill(`carol-${Date.now().toString(36)}@example.com`);
    await page.locator('#password').fill('correct horse battery staple');
    await page.locator('form button[type=submit]').click();
    await page.locator('[data-connection="live"]').waitFor();
    const { publicKey } = await api(page, '/api/v1/push/vapid-public-key');
    await postJson(`${PUSH}/_control/vapid`, { publicKey });

    step('settings: this browser is added; the service worker is registered, the subscription stored');
    await page.getByRole('link', { name: 'Settings' }).first().click();
    await page.locator('#channel-kind').selectOption('web_push');
    await page.getByRole('button', { name: 'Notify this browser' }).click();
    const pushItem = page.locator('li.channel[data-kind="web_push"][data-state="active"]');
    await pushItem.waitFor();
    const worker = await page.evaluate(() =>
      navigator.serviceWorker.getRegistration('/').then((r) => r?.active?.scriptURL ?? null),
    );
    check(worker === `${APP}/sw.js`, `the app's service worker is active: ${worker}`);
    const stored = (await api(page, '/api/v1/channels')).items;
    const pushChannel = stored.find((c) => c.kind === 'web_push');
    check(pushChannel?.endpoint === SUBSCRIPTION.endpoint, `the subscription is stored: ${JSON.stringify(stored)}`);

    step('a webhook: its secret shown once, a test sent, the delivery listed');
    await page.locator('#channel-kind').selectOption('webhook');
    await page.locator('#channel-url').fill(`${WEBHOOK}/carol`);
    await page.locator('.channel-form button[type=submit]').click();
    const hookItem = page.locator('li.channel[data-kind="webhook"]');
    await hookItem.waitFor();
    const secret = (await page.locator('.secret code').first().textContent()).trim();
    check(secret.startsWith('whsec_'), `the secret is shown: ${secret}`);
    await postJson(`${WEBHOOK}/_control/secret`, { path: '/carol', secret });
    await hookItem.getByRole('button', { name: 'Send test' }).click();
    await until('the receiver accepts the signed test', async () => {
      const state = await standInState(WEBHOOK);
      return Object.values(state.accepted).some((a) => JSON.parse(a.body).type === 'channel.test');
    });
    await hookItem.locator('summary').click();
    await hookItem.locator('.deliveries li[data-status="delivered"]', { hasText: 'test' }).waitFor();
    await accessible(page, 'settings with two channels');
    const hookChannel = (await api(page, '/api/v1/channels')).items.find((c) => c.kind === 'webhook');

    step('a rule that uses both channels, chosen in the rule form');
    await page.goto(`${APP}/i/${encodeURIComponent(SAMSUNG)}`);
    await page.getByRole('button', { name: 'New alert' }).click();
    const form = page.locator('dialog[open] form');
    await form.locator('#rule-level').fill('70100');
    await form.getByLabel('Only the channels I pick').check();
    await form.locator(`input[name=channel][value="${pushChannel.id}"]`).check();
    await form.locator(`input[name=channel][value="${hookChannel.id}"]`).check();
    await accessible(page, 'rule form with its channels');
    await form.locator('button[type=submit]').click();
    await form.waitFor({ state: 'detached' });
    const rules = await api(page, '/api/v1/rules');
    const rule = rules.find((r) => r.level === '70100');
    check(
      JSON.stringify(rule?.channels) === JSON.stringify([pushChannel.id, hookChannel.id].sort((a, b) => a - b)),
      `the rule keeps its channels: ${JSON.stringify(rule)}`,
    );

    step('every tab of the app closed, the price crosses the level: push and webhook receive it');
    await page.close();
    await postJson(`${CONTROL}/kis/trade`, { code: '005930', price: '70200' });
    const pushed = await until('the push service gets the alert', async () => {
      const state = await standInState(PUSH);
      check(state.rejected.length === 0, `the push service refused: ${JSON.stringify(state.rejected)}`);
      return state.messages.find((m) => m.payload.alert?.ruleId === rule.id);
    });
    const payload = pushed.payload;
    check(payload.alert.instrument === SAMSUNG, `the push names the instrument: ${JSON.stringify(payload)}`);
    check(payload.url === `${APP}/i/${SAMSUNG}`, `a click opens the instrument: ${payload.url}`);
    check(payload.snooze.length === 3, `three snooze actions: ${JSON.stringify(payload.snooze)}`);
    check(payload.snooze[1].url === `${APP}/rules/${rule.id}/snooze?for=1h`, `snooze for an hour: ${payload.snooze[1].url}`);
    const hooked = await until('the webhook gets the alert', async () => {
      const state = await standInState(WEBHOOK);
      return Object.values(state.accepted)
        .map((a) => JSON.parse(a.body))
        .find((body) => body.type === 'alert.triggered' && body.data.ruleId === rule.id);
    });
    check(hooked.data.snoozeUrls['1d'] === `${APP}/rules/${rule.id}/snooze?for=1d`, `the webhook carries snooze links: ${JSON.stringify(hooked.data)}`);

    step('the service worker shows the push as a notification, with no tab of the app open');
    const blank = await context.newPage();
    const cdp = await context.newCDPSession(blank);
    const registration = new Promise((resolve) =>
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const ours = registrations.find((r) => r.scopeURL === `${APP}/` && !r.isDeleted);
        if (ours) resolve(ours.registrationId);
      }),
    );
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: APP,
      registrationId: await registration,
      data: JSON.stringify(payload),
    });
    const app = await context.newPage();
    await app.goto(`${APP}/rules`);
    const shown = await until('the notification is shown', () =>
      app.evaluate((tag) =>
        navigator.serviceWorker.ready
          .then((r) => r.getNotifications({ tag }))
          .then((list) => list.map((n) => ({ title: n.title, actions: n.actions.map((a) => a.title) })))
          .then((list) => list[0]),
        payload.tag,
      ),
    );
    check(shown.title === payload.title, `the notification's title: ${JSON.stringify(shown)}`);
    check(shown.actions.length >= 2 && shown.actions[0] === payload.snooze[0].title, `its snooze actions: ${JSON.stringify(shown)}`);

    step("the notification's snooze action: its page snoozes the rule for an hour");
    app.on('pageerror', (error) => errors.push(`uncaught ${error.message}`));
    const asked = Date.now();
    await app.goto(payload.snooze[1].url);
    await app.locator('.snoozed').waitFor();
    const snoozed = (await api(app, '/api/v1/rules')).find((r) => r.id === rule.id);
    const snoozedTill = Date.parse(snoozed.snoozedUntil);
    check(snoozedTill >= asked + 3_600_000 && snoozedTill <= Date.now() + 3_600_000, `snoozed for an hour: ${JSON.stringify(snoozed)}`);
    await accessible(app, 'snooze page');

    check(errors.length === 0, `console errors:\n  ${errors.join('\n  ')}`);
    console.log('channels: every scenario passed');
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exit(1);
});

// The person's display preferences, kept in this browser: language (Korean or English, from the
// browser's languages until chosen), theme (light, dark or the system's) and the colour
// convention for rises and falls (Korean: red up, blue down; international: green up, red down).

import { computed, effect, signal } from '@preact/signals';

export type Language = 'ko' | 'en';
export type Theme = 'system' | 'light' | 'dark';
export type Colours = 'auto' | 'kr' | 'intl';

function stored<T extends string>(key: string, allowed: readonly T[], fallback: T) {
  let initial = fallback;
  try {
    const value = localStorage.getItem(key);
    if (value && (allowed as readonly string[]).includes(value)) initial = value as T;
  } catch {
    // Storage refused (private mode): preferences last for this page only.
  }
  const value = signal<T>(initial);
  effect(() => {
    try {
      localStorage.setItem(key, value.value);
    } catch {
      // as above
    }
  });
  return value;
}

function browserLanguage(): Language {
  const languages = navigator.languages?.length ? navigator.languages : [navigator.language];
  return languages.some((l) => l?.toLowerCase().startsWith('ko')) ? 'ko' : 'en';
}

export const language = stored<Language>('signal.language', ['ko', 'en'], browserLanguage());
export const theme = stored<Theme>('signal.theme', ['system', 'light', 'dark'], 'system');
export const colours = stored<Colours>('signal.colours', ['auto', 'kr', 'intl'], 'auto');
export const sound = stored<'on' | 'off'>('signal.sound', ['on', 'off'], 'on');

/** The convention in force: the chosen one, or the language's. */
export const colourConvention = computed<'kr' | 'intl'>(() =>
  colours.value === 'auto' ? (language.value === 'ko' ? 'kr' : 'intl') : colours.value,
);

export const locale = computed(() => (language.value === 'ko' ? 'ko-KR' : 'en-US'));

const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');
const systemDark = signal(darkQuery.matches);
darkQuery.addEventListener('change', (e) => (systemDark.value = e.matches));

export const dark = computed(() =>
  theme.value === 'system' ? systemDark.value : theme.value === 'dark',
);

effect(() => {
  const root = document.documentElement;
  root.lang = language.value;
  root.dataset.theme = dark.value ? 'dark' : 'light';
  root.dataset.colours = colourConvention.value;
  document.querySelector('meta[name="color-scheme"]')?.setAttribute('content', dark.value ? 'dark' : 'light');
});

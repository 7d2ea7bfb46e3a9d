// Every alert rule of the person, with its state, trigger count and last firing; re-arm, edit
// and delete.

import { useCallback, useEffect, useState } from 'preact/hooks';
import { enc, get, type Instrument, type Rule } from '../api';
import { alertsArrived } from '../alerts';
import { announce } from '../components/Announcer';
import { Dialog } from '../components/Dialog';
import { RuleForm } from '../components/RuleForm';
import { RuleList } from '../components/RuleList';
import { learnNames, nameOf } from '../format';
import { t } from '../i18n';
import { loadRules } from '../rules';

export function Rules() {
  const [rules, setRules] = useState<Rule[]>();
  const [editing, setEditing] = useState<{ rule: Rule; instrument: Instrument }>();

  const refresh = useCallback(async () => {
    try {
      const list = await loadRules();
      setRules(list);
      void learnNames(list.map((r) => r.instrument));
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh, alertsArrived.value]);

  const edit = async (rule: Rule) => {
    try {
      setEditing({ rule, instrument: await get<Instrument>(`/api/v1/instruments/${enc(rule.instrument)}`) });
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  };

  return (
    <div class="page rules-page">
      <h1>{t('rules.title')}</h1>
      <section class="card">
        {rules === undefined ? (
          <p class="muted">{t('loading')}</p>
        ) : (
          <RuleList rules={rules} empty={t('rules.empty')} showInstrument onChanged={refresh} onEdit={edit} />
        )}
      </section>
      {editing && (
        <Dialog title={t('form.title.edit', { name: nameOf(editing.instrument) })} onClose={() => setEditing(undefined)}>
          <RuleForm
            instrument={editing.instrument}
            rule={editing.rule}
            onSaved={() => {
              setEditing(undefined);
              announce(t('form.saved'));
              void refresh();
            }}
          />
        </Dialog>
      )}
    </div>
  );
}

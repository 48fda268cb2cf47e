// A new run: workspace, spec and plan picked from its files, and the run flags.

import { h, view } from './dom.js';
import { api } from './api.js';

export function newRun(signal) {
  const root = view();
  document.title = 'loopd — new run';
  const input = (id, label, attrs = {}) => {
    const el = h(attrs.tag || 'input', { id, name: id, ...attrs, tag: undefined });
    return [el, h('label', { class: 'field' }, h('span', { text: label }), el)];
  };
  const [workspace, workspaceField] = input('new-workspace', 'Workspace (absolute path to a git repository)', { type: 'text', list: 'known-workspaces', required: true, autocomplete: 'off' });
  const known = h('datalist', { id: 'known-workspaces' });
  const [spec, specField] = input('new-spec', 'Spec', { tag: 'select', required: true });
  const [plan, planField] = input('new-plan', 'Plan', { tag: 'select' });
  const [name, nameField] = input('new-name', 'Name (optional)', { type: 'text' });
  const [verify, verifyField] = input('new-verify', 'Verify commands (one per line)', { tag: 'textarea', rows: '3' });
  const [target, targetField] = input('new-merge-target', 'Merge target branch (optional)', { type: 'text' });
  const [agent, agentField] = input('new-agent', 'Agent', { tag: 'select' });
  agent.append(h('option', { value: '', text: 'the workspace\'s (.loop/config)' }));
  for (const a of ['claude', 'codex', 'command']) agent.append(h('option', { value: a, text: a }));
  const [agentCmd, agentCmdField] = input('new-agent-cmd', 'Agent command (for agent = command)', { type: 'text' });
  const [model, modelField] = input('new-model', 'Model (optional)', { type: 'text' });
  const [iterations, iterationsField] = input('new-iterations', 'Iterations (optional)', { type: 'number', min: '1' });
  const [cost, costField] = input('new-max-cost', 'Cost cap in USD (optional)', { type: 'number', min: '0', step: '0.01' });
  const note = h('p', { class: 'note', id: 'new-note', role: 'status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'new-submit' }, 'Start the run');
  const form = h('form', { class: 'form-grid', id: 'new-run' },
    workspaceField, known, specField, planField, nameField, agentField, agentCmdField, modelField,
    iterationsField, costField, targetField, verifyField, h('div', {}, submit), note);
  root.replaceChildren(h('h1', { text: 'New run' }), form);
  agentCmdField.hidden = true;
  agent.addEventListener('change', () => { agentCmdField.hidden = agent.value !== 'command'; });

  let specs = [];
  async function load() {
    spec.replaceChildren();
    plan.replaceChildren();
    const path = workspace.value.trim();
    if (!path) return;
    note.textContent = 'Reading the workspace…';
    try {
      const listing = await api('GET', `/workspace/specs?workspace_root=${encodeURIComponent(path)}`);
      specs = listing.specs;
      for (const s of specs) {
        spec.append(h('option', { value: s.path, text: `${s.path}${s.title ? ` — ${s.title}` : ''}${s.status ? ` [${s.status}]` : ''}` }));
      }
      plan.append(h('option', { value: '', text: 'the spec\'s own plan' }));
      for (const p of listing.plans) plan.append(h('option', { value: p, text: p }));
      note.textContent = specs.length ? `${specs.length} spec${specs.length === 1 ? '' : 's'} in ${listing.specs_dir}` : `No spec under ${listing.specs_dir}.`;
      pickPlan();
    } catch (error) {
      note.textContent = error.message;
    }
  }
  function pickPlan() {
    const chosen = specs.find((s) => s.path === spec.value);
    plan.value = chosen && chosen.plan_path ? chosen.plan_path : '';
  }
  workspace.addEventListener('change', load);
  spec.addEventListener('change', pickPlan);
  api('GET', '/runs?limit=200').then(({ runs }) => {
    const seen = new Set(runs.map((r) => r.workspace_root));
    for (const w of seen) known.append(h('option', { value: w }));
    if (!workspace.value && runs.length) { workspace.value = runs[0].workspace_root; load(); }
  }).catch(() => {});

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { workspace_root: workspace.value.trim(), spec_path: spec.value };
    if (plan.value) body.plan_path = plan.value;
    if (name.value.trim()) body.name = name.value.trim();
    const commands = verify.value.split('\n').map((c) => c.trim()).filter(Boolean);
    if (commands.length) body.verify_cmds = commands;
    if (target.value.trim()) body.merge_target = target.value.trim();
    if (agent.value) body.agent = agent.value;
    if (agent.value === 'command' && agentCmd.value.trim()) body.agent_cmd = agentCmd.value.trim();
    if (model.value.trim()) body.model = model.value.trim();
    if (iterations.value) body.iterations = Number(iterations.value);
    if (cost.value) body.max_cost = Number(cost.value);
    submit.disabled = true;
    note.textContent = 'Starting…';
    try {
      const { run } = await api('POST', '/runs', body);
      if (!signal.aborted) location.hash = `#/runs/${run.id}`;
    } catch (error) {
      note.textContent = `Not started: ${error.message}`;
    } finally {
      submit.disabled = false;
    }
  });
}

// Release Ledger console: approving a release in the browser (docs/console.md, "Approving").
//
// The approver's key file (unencrypted PKCS#8 PEM Ed25519, as `release-ledger keygen` writes it)
// is imported with WebCrypto and never leaves the page. The page asks the console for the exact
// unsigned ApprovalGranted (`approvals/prepare`), shows it, signs its DSSE v1 PAE
//   "DSSEv1" SP len(type) SP type SP len(body) SP body   (lengths: ASCII decimal byte counts,
//                                                          ledger/src/envelope.rs, pae)
// with Ed25519 and appends the envelope (`append`), then shows the ledger's answer verbatim.

const utf8 = new TextEncoder();

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text, what) {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new Error(`${what} is not standard padded base64`);
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function fromBase64Url(text) {
  const standard = text.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(standard + '='.repeat((4 - (standard.length % 4)) % 4), 'the public key');
}

/** The DSSE v1 pre-authentication encoding of a payload (bytes), what the signature covers. */
export function pae(payloadType, payloadBytes) {
  const type = utf8.encode(payloadType);
  const head = utf8.encode(`DSSEv1 ${type.length} `);
  const middle = utf8.encode(` ${payloadBytes.length} `);
  const out = new Uint8Array(head.length + type.length + middle.length + payloadBytes.length);
  out.set(head, 0);
  out.set(type, head.length);
  out.set(middle, head.length + type.length);
  out.set(payloadBytes, head.length + type.length + middle.length);
  return out;
}

/**
 * The DER of an unencrypted PKCS#8 PEM private key; throws a readable error for an encrypted key
 * or anything that is not one.
 */
export function pkcs8Der(pem) {
  const text = String(pem).trim();
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----')) {
    throw new Error(
      'this key file is encrypted (ENCRYPTED PRIVATE KEY): the console signs only with an unencrypted ' +
        'PKCS#8 key, as `release-ledger keygen` writes it; sign with the CLI instead, which asks for the passphrase',
    );
  }
  const match = /^-----BEGIN PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END PRIVATE KEY-----$/.exec(text);
  if (!match) {
    throw new Error('this is not a PKCS#8 PEM private key file ("-----BEGIN PRIVATE KEY-----"), as `release-ledger keygen` writes');
  }
  return fromBase64(match[1].replace(/[\r\n]/g, ''), 'the key file');
}

/**
 * Imports an Ed25519 PKCS#8 PEM key: `{privateKey: CryptoKey, publicKey: raw 32 bytes, keyId:
 * hex SHA-256 of the raw public key}` (the ledger's key id).
 */
export async function importSigningKey(pem) {
  const der = pkcs8Der(pem);
  let privateKey;
  try {
    privateKey = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, true, ['sign']);
  } catch (error) {
    throw new Error(`this key file holds no Ed25519 private key this browser can import (${error.message || error})`);
  }
  const jwk = await crypto.subtle.exportKey('jwk', privateKey);
  const publicKey = fromBase64Url(jwk.x);
  const keyId = toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', publicKey)));
  return { privateKey, publicKey, keyId };
}

async function signWith(key, payloadType, payloadBytes) {
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, pae(payloadType, payloadBytes)));
  return { payloadType, payload: toBase64(payloadBytes), signatures: [{ keyid: key.keyId, sig: toBase64(sig) }] };
}

/**
 * Signs a payload as a DSSE envelope with a PKCS#8 PEM Ed25519 key:
 * `{payloadType, payload: base64, signatures: [{keyid: hex SHA-256 of the raw public key, sig: base64}]}`,
 * the JSON `append` takes.
 */
export async function signEnvelope(privateKeyPem, payloadType, payloadBytes) {
  return signWith(await importSigningKey(privateKeyPem), payloadType, payloadBytes);
}

// ---------------------------------------------------------------------------------------------
// The form

/** POSTs JSON same-origin; `{status, ok, body}` with the answer parsed when it is JSON, else its text. */
async function postJson(url, value) {
  const response = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(value),
  });
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: shown as text
  }
  return { status: response.status, ok: response.ok, body };
}

function ensureElement(doc, id, tag, after) {
  let element = doc.getElementById(id);
  if (!element) {
    element = doc.createElement(tag);
    element.id = id;
    after.after(element);
  }
  return element;
}

/** Shows an outcome: `data-outcome` and lines of text (`[label, value]` pairs shown verbatim). */
function show(element, outcome, title, rows = []) {
  const doc = element.ownerDocument;
  element.dataset.outcome = outcome;
  element.replaceChildren();
  const heading = doc.createElement('strong');
  heading.textContent = title;
  element.append(heading);
  if (rows.length) {
    const list = doc.createElement('dl');
    for (const [label, value] of rows) {
      const dt = doc.createElement('dt');
      dt.textContent = label;
      const dd = doc.createElement('dd');
      dd.dataset.field = label;
      dd.textContent = typeof value === 'string' ? value : JSON.stringify(value);
      list.append(dt, dd);
    }
    element.append(list);
  }
}

/** Shows a refusal answer (`{code, message}`, or whatever came) verbatim. */
function showRefusal(element, what, answer) {
  const rows = [];
  if (answer.body && typeof answer.body === 'object') {
    const refusal = answer.body.refusal && typeof answer.body.refusal === 'object' ? answer.body.refusal : answer.body;
    if (refusal.code !== undefined) rows.push(['code', String(refusal.code)]);
    if (refusal.message !== undefined) rows.push(['message', String(refusal.message)]);
    if (typeof answer.body.refusal === 'string') rows.push(['message', answer.body.refusal]);
    if (!rows.length) rows.push(['answer', JSON.stringify(answer.body)]);
  } else {
    rows.push(['answer', String(answer.body) || '(empty)']);
  }
  if (!answer.ok) rows.push(['HTTP status', String(answer.status)]);
  show(element, 'refused', `${what} refused`, rows);
}

/** The payload as the person will sign it: pretty JSON when it is JSON, else its text. */
function displayPayload(bytes) {
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/**
 * Refuses to sign a prepared payload that is not the approval the person asked for: another
 * type, tenant, release, role, comment or method (a server that is not the one the person
 * trusts must not get an approval of something else signed).
 */
export function checkPrepared(payloadBytes, asked) {
  let event;
  try {
    event = JSON.parse(new TextDecoder().decode(payloadBytes));
  } catch {
    throw new Error('the prepared payload is not JSON: not signed');
  }
  const data = (event && event.data) || {};
  const actor = (event && event.actor) || {};
  const wrong = [];
  if (event.type !== 'ApprovalGranted') wrong.push(`type ${JSON.stringify(event.type)}`);
  if (event.tenant !== asked.tenant) wrong.push(`tenant ${JSON.stringify(event.tenant)}`);
  if (event.releaseId !== asked.releaseId) wrong.push(`release ${JSON.stringify(event.releaseId)}`);
  if (data.role !== asked.role || actor.role !== asked.role) wrong.push(`role ${JSON.stringify(data.role)}`);
  if ((data.comment || '') !== asked.comment) wrong.push('another comment');
  if (data.method !== 'UI') wrong.push(`method ${JSON.stringify(data.method)}`);
  if (wrong.length) throw new Error(`the server prepared another event (${wrong.join(', ')}): not signed`);
}

/** One approval, start to end, from the form's current values. */
async function approve(form, resultElement, payloadElement) {
  const doc = form.ownerDocument;
  const tenant = form.dataset.tenant;
  const releaseId = form.dataset.release;
  if (!tenant || !releaseId) throw new Error('the form names no tenant or release (data-tenant, data-release)');
  const base = `/t/${encodeURIComponent(tenant)}`;
  const fileInput = doc.getElementById('approve-key');
  const file = fileInput && fileInput.files && fileInput.files[0];
  if (!file) throw new Error('choose your key file first');
  payloadElement.hidden = true;
  payloadElement.textContent = '';
  const key = await importSigningKey(await file.text());
  const role = (doc.getElementById('approve-role') || {}).value || '';
  const comment = (doc.getElementById('approve-comment') || {}).value || '';

  show(resultElement, 'working', `Preparing the approval for key ${key.keyId.slice(0, 16)}…`);
  const prepared = await postJson(`${base}/approvals/prepare`, { releaseId, keyId: key.keyId, role, comment });
  const body = prepared.body;
  if (!prepared.ok || !body || typeof body !== 'object' || body.refusal || typeof body.payload !== 'string') {
    showRefusal(resultElement, 'Preparing the approval', prepared);
    return;
  }
  const payloadBytes = fromBase64(body.payload, 'the prepared payload');
  // Sign only what the person asked for: the server prepares the bytes, the page checks them.
  checkPrepared(payloadBytes, { tenant, releaseId, role, comment });
  payloadElement.textContent = displayPayload(payloadBytes);
  payloadElement.dataset.payloadType = body.payloadType;
  payloadElement.hidden = false;

  show(resultElement, 'working', 'Signing and appending…');
  const envelope = await signWith(key, body.payloadType, payloadBytes);
  const appended = await postJson(`${base}/append`, envelope);
  const receipt = appended.body;
  if (appended.ok && receipt && typeof receipt === 'object' && receipt.seq !== undefined && receipt.code === undefined) {
    show(resultElement, 'appended', 'Approval appended to the ledger', [
      ['seq', String(receipt.seq)],
      ['entryHash', String(receipt.entryHash)],
    ]);
    const link = doc.createElement('a');
    link.href = `${base}/entries/${encodeURIComponent(String(receipt.seq))}`;
    link.textContent = 'the entry';
    resultElement.append(link);
    setTimeout(() => doc.defaultView.location.reload(), 1500);
    return;
  }
  showRefusal(resultElement, 'The append', appended);
}

/** Wires `form#approve` on the release page. */
export function init(doc = document) {
  const form = doc.getElementById('approve');
  if (!form) return;
  const resultElement = ensureElement(doc, 'approve-result', 'div', form);
  const payloadElement = ensureElement(doc, 'approve-payload', 'pre', form);
  if (!resultElement.hasAttribute('aria-live')) resultElement.setAttribute('aria-live', 'polite');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const controls = Array.from(form.querySelectorAll('button, input, select, textarea'));
    const wasDisabled = controls.map((c) => c.disabled);
    controls.forEach((c) => {
      c.disabled = true;
    });
    form.setAttribute('aria-busy', 'true');
    try {
      await approve(form, resultElement, payloadElement);
    } catch (error) {
      show(resultElement, 'error', 'Nothing was appended', [['error', error && error.message ? error.message : String(error)]]);
    } finally {
      controls.forEach((c, i) => {
        c.disabled = wasDisabled[i];
      });
      form.removeAttribute('aria-busy');
    }
  });
}

if (typeof document !== 'undefined' && document.getElementById('approve')) {
  init();
}

// Release Ledger console: checks an entry's proof.json in the browser (docs/console.md,
// "proof.json"), byte for byte as the ledger computes it (docs/format.md: "Hashes",
// "Checkpoints"; ledger/src/hash.rs, merkle.rs, checkpoint.rs):
//
//   1. payload-hash   payloadHash = BLAKE3(envelope bytes)                (skipped when redacted)
//   2. entry-hash     entryHash = BLAKE3("release-ledger/entry/v1" ‖ seq_be64 ‖ recordedAt_be64
//                                        ‖ prevHash ‖ payloadHash)
//   3. inclusion      leaf = SHA-256(0x00 ‖ entryHash), node = SHA-256(0x01 ‖ l ‖ r): the audit
//                     path from leafIndex in treeSize (RFC 9162 §2.1.3.2) gives the checkpoint's root
//   4. signature      the checkpoint note's signature line by the pinned key (C2SP signed-note:
//                     key name and key hash SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]) verifies (Ed25519)
//   5. tree-size      the checkpoint's tree size is the proof's, and its origin is the tenant's log
//
// Each step checks one link on the values proof.json states, so a tampered field fails the step
// that reads it; the entry is verified only when every link holds. SHA-256 and Ed25519 are
// WebCrypto's; BLAKE3 is @noble/hashes', vendored (blake3.js, scripts/vendor-js.sh).

import { blake3 } from './blake3.js';

/** The steps, in order: `data-step` values of `ol#verify-steps li`. */
export const STEPS = ['payload-hash', 'entry-hash', 'inclusion', 'signature', 'tree-size'];

const LABELS = {
  'payload-hash': 'Payload hash',
  'entry-hash': 'Entry hash',
  inclusion: 'Inclusion in the log',
  signature: 'Checkpoint signature',
  'tree-size': 'Checkpoint tree size and origin',
};

/** Domain-separation prefix of the entry hash (ledger/src/hash.rs, ENTRY_DOMAIN). */
const ENTRY_DOMAIN = 'release-ledger/entry/v1';
/** C2SP signed-note signature type of Ed25519. */
const ED25519_TYPE = 0x01;
/** ledger/src/checkpoint.rs, MAX_NOTE_BYTES. */
const MAX_NOTE_BYTES = 16 * 1024;
const U64_MAX = (1n << 64n) - 1n;

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Encodings (strict: what the ledger writes, nothing else)

/** Lowercase hex of bytes. */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Bytes of a hex string of exactly `length` bytes (any case); throws otherwise. */
export function fromHex(text, length, what) {
  if (typeof text !== 'string' || !/^[0-9a-fA-F]*$/.test(text) || text.length !== 2 * length) {
    throw new Error(`${what} is not ${length} bytes of hex`);
  }
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Standard padded base64 of bytes. */
export function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Decodes standard padded base64 as the ledger's decoder does (canonical only); throws otherwise. */
export function fromBase64(text, what) {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new Error(`${what} is not standard padded base64`);
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  if (toBase64(out) !== text) throw new Error(`${what} is not canonical base64`);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** A u64 from a JSON number or decimal string (`recordedAt` is a string: nanoseconds). */
function toU64(value, what) {
  let n;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) n = BigInt(value);
  else if (typeof value === 'string' && /^(0|[1-9][0-9]*)$/.test(value)) n = BigInt(value);
  else throw new Error(`${what} is not an unsigned integer`);
  if (n > U64_MAX) throw new Error(`${what} is out of the u64 range`);
  return n;
}

function be64(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, false);
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

// ---------------------------------------------------------------------------------------------
// The ledger's hashes

/** The 103 bytes an entry hash is the BLAKE3 of (ledger/src/hash.rs, entry_hash_input). */
export function entryHashInput(seq, recordedAt, prevHash, payloadHash) {
  return concat(utf8.encode(ENTRY_DOMAIN), be64(BigInt(seq)), be64(BigInt(recordedAt)), prevHash, payloadHash);
}

/** RFC 6962 leaf hash of an entry: SHA-256(0x00 ‖ entryHash). */
export async function leafHash(entryHash) {
  return sha256(concat(Uint8Array.of(0x00), entryHash));
}

/** RFC 6962 interior node: SHA-256(0x01 ‖ left ‖ right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(0x01), left, right));
}

/**
 * The root an inclusion proof implies (RFC 9162 §2.1.3.2), or throws when the path cannot be
 * one of `leafIndex` in a tree of `treeSize` (wrong length, index out of range).
 */
export async function rootFromInclusionProof(leafIndex, treeSize, leaf, path) {
  let fn = BigInt(leafIndex);
  let sn = BigInt(treeSize) - 1n;
  if (BigInt(leafIndex) >= BigInt(treeSize)) throw new Error(`leaf index ${leafIndex} is not below tree size ${treeSize}`);
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) throw new Error('the audit path is longer than the tree is deep');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('the audit path is shorter than the tree is deep');
  return r;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (C2SP tlog-checkpoint signed notes, as ledger/src/checkpoint.rs parses them)

/**
 * Splits a signed note into its checkpoint (origin, size, root), the signed text and its
 * signature lines ({name, keyHash (4 bytes), signature}); throws on a malformed note.
 */
export function parseCheckpointNote(note) {
  if (typeof note !== 'string') throw new Error('the checkpoint is not a note (text)');
  if (utf8.encode(note).length > MAX_NOTE_BYTES) throw new Error(`the note is longer than ${MAX_NOTE_BYTES} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/.test(note)) throw new Error('the note contains control characters');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new Error('the note has no blank line before its signatures');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  const lines = text.slice(0, -1).split('\n');
  const [origin, sizeLine, rootLine, ...extensions] = lines;
  if (!origin) throw new Error('the note has no origin line');
  if (sizeLine === undefined || !/^(0|[1-9][0-9]*)$/.test(sizeLine)) throw new Error('the tree size is not a canonical decimal');
  const size = BigInt(sizeLine);
  if (size > U64_MAX) throw new Error('the tree size is out of range');
  if (rootLine === undefined) throw new Error('the note has no root line');
  const root = fromBase64(rootLine, 'the root hash');
  if (root.length !== 32) throw new Error('the root hash is not 32 bytes');
  if (extensions.some((line) => line === '')) throw new Error('the note has an empty extension line');
  if (extensions.some((line) => line.startsWith('chain-head '))) {
    throw new Error('a format v1 checkpoint (BLAKE3 tree, chain-head line): not a root of this tree');
  }
  if (block === '' || !block.endsWith('\n')) throw new Error('the signature block does not end in a newline');
  const signatures = [];
  for (const line of block.slice(0, -1).split('\n')) {
    if (!line.startsWith('\u2014 ')) throw new Error(`bad signature line ${JSON.stringify(line)}`);
    const rest = line.slice(2);
    const space = rest.indexOf(' ');
    if (space < 0) throw new Error(`bad signature line ${JSON.stringify(line)}`);
    const blob = fromBase64(rest.slice(space + 1), 'a signature');
    if (blob.length < 4) continue; // no key hash: no key's signature
    signatures.push({ name: rest.slice(0, space), keyHash: blob.slice(0, 4), signature: blob.slice(4) });
  }
  return { origin, size, root, extensions, text, signatures };
}

/** C2SP signed-note key hash of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]. */
export async function noteKeyHash(name, publicKey) {
  return (await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, ED25519_TYPE), publicKey))).slice(0, 4);
}

async function ed25519Verify(publicKey, signature, message) {
  const key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, message);
}

// ---------------------------------------------------------------------------------------------
// verifyEntry

function step(name, ok, detail) {
  return { step: name, ok, detail };
}

/** Runs `check` (returning [ok, detail]) as one step; an exception fails the step with its message. */
async function run(name, check) {
  try {
    const [ok, detail] = await check();
    return step(name, ok, detail);
  } catch (error) {
    return step(name, false, error && error.message ? error.message : String(error));
  }
}

/**
 * Verifies a proof.json object against the pinned ledger key
 * (`{keyName, publicKey: base64 raw 32 bytes, keyId: hex SHA-256 of the key}`; `keyName` is the
 * signed-note key name, which the ledger makes its tenant's origin, "<prefix>/<tenant>").
 *
 * Returns `{ok, steps: [{step, ok: true | false | null (skipped), detail}]}` with one step per
 * entry of STEPS. `ok` is true when no step failed and only step 1 was skipped (a redacted entry:
 * its record and place in the log are verified, its payload bytes no longer exist).
 */
export async function verifyEntry(proof, pinnedKey) {
  const steps = [];
  const entry = (proof && proof.entry) || {};
  const hashes = {};
  const field = (name) => {
    if (!(name in hashes)) hashes[name] = fromHex(entry[name], 32, name);
    return hashes[name];
  };

  // 1. payloadHash = BLAKE3(envelope bytes)
  if (proof && proof.envelope === null) {
    steps.push(
      step(
        'payload-hash',
        null,
        'not checked: the payload is redacted (envelope null), so only its hash remains; ' +
          'the entry hash below commits to that hash, not to any payload bytes',
      ),
    );
  } else {
    steps.push(
      await run('payload-hash', async () => {
        const envelope = fromBase64(proof && proof.envelope, 'the envelope');
        const stated = field('payloadHash');
        const computed = blake3(envelope);
        return equalBytes(computed, stated)
          ? [true, `BLAKE3 of the ${envelope.length} envelope bytes is the payloadHash ${toHex(stated)}`]
          : [false, `BLAKE3 of the ${envelope.length} envelope bytes is ${toHex(computed)}, not the payloadHash ${toHex(stated)}`];
      }),
    );
  }

  // 2. entryHash = BLAKE3(domain ‖ seq ‖ recordedAt ‖ prevHash ‖ payloadHash)
  steps.push(
    await run('entry-hash', async () => {
      const seq = toU64(entry.seq, 'entry.seq');
      if (proof.seq !== undefined && toU64(proof.seq, 'seq') !== seq) {
        return [false, `the entry is seq ${seq}, the proof is of seq ${proof.seq}`];
      }
      const recordedAt = toU64(entry.recordedAt, 'entry.recordedAt');
      const input = entryHashInput(seq, recordedAt, field('prevHash'), field('payloadHash'));
      const computed = blake3(input);
      const stated = field('entryHash');
      const what = `BLAKE3("${ENTRY_DOMAIN}" ‖ seq ${seq} ‖ recordedAt ${recordedAt} ‖ prevHash ‖ payloadHash)`;
      return equalBytes(computed, stated)
        ? [true, `${what} is the entryHash ${toHex(stated)}`]
        : [false, `${what} is ${toHex(computed)}, not the entryHash ${toHex(stated)}`];
    }),
  );

  // The checkpoint, for steps 3 to 5.
  let note = null;
  let noteError = null;
  try {
    note = parseCheckpointNote(proof && proof.checkpoint);
  } catch (error) {
    noteError = `the checkpoint does not parse: ${error.message}`;
  }
  const inclusion = (proof && proof.inclusion) || {};

  // 3. RFC 6962 inclusion of SHA-256(0x00 ‖ entryHash) in the checkpoint's tree
  steps.push(
    await run('inclusion', async () => {
      if (noteError) return [false, noteError];
      const leafIndex = toU64(inclusion.leafIndex, 'inclusion.leafIndex');
      const treeSize = toU64(inclusion.treeSize, 'inclusion.treeSize');
      const seq = toU64(entry.seq, 'entry.seq');
      if (leafIndex !== seq) return [false, `the proof is of leaf ${leafIndex}, the entry is seq ${seq}`];
      if (!Array.isArray(inclusion.hashes)) throw new Error('inclusion.hashes is not a list');
      const path = inclusion.hashes.map((h, i) => fromHex(h, 32, `audit path hash ${i}`));
      const root = await rootFromInclusionProof(leafIndex, treeSize, await leafHash(field('entryHash')), path);
      const what = `the leaf SHA-256(0x00 ‖ entryHash) at index ${leafIndex} and the ${path.length} audit path hashes give the root ${toBase64(root)} of a tree of ${treeSize}`;
      return equalBytes(root, note.root)
        ? [true, `${what}: the checkpoint's root`]
        : [false, `${what}, not the checkpoint's root ${toBase64(note.root)}`];
    }),
  );

  // 4. The pinned key's signature line verifies
  steps.push(
    await run('signature', async () => {
      if (noteError) return [false, noteError];
      const publicKey = fromBase64(pinnedKey && pinnedKey.publicKey, 'the pinned public key');
      if (publicKey.length !== 32) return [false, 'the pinned public key is not 32 bytes'];
      const keyId = toHex(await sha256(publicKey));
      if (pinnedKey.keyId !== undefined && String(pinnedKey.keyId).toLowerCase() !== keyId) {
        return [false, `the pinned key id ${pinnedKey.keyId} is not the SHA-256 of the pinned key (${keyId})`];
      }
      const name = pinnedKey.keyName || note.origin;
      const keyHash = await noteKeyHash(name, publicKey);
      const lines = note.signatures.filter(
        (s) => s.name === name && equalBytes(s.keyHash, keyHash) && s.signature.length === 64,
      );
      if (lines.length === 0) {
        const names = note.signatures.map((s) => `${s.name}+${toHex(s.keyHash)}`).join(', ') || 'none';
        return [false, `no signature line by the pinned key ${name}+${toHex(keyHash)} (the note has: ${names})`];
      }
      const message = utf8.encode(note.text);
      for (const line of lines) {
        if (!(await ed25519Verify(publicKey, line.signature, message))) {
          return [false, `the signature line of ${name}+${toHex(keyHash)} does not verify under the pinned key ${keyId.slice(0, 16)}…`];
        }
      }
      return [
        true,
        `the checkpoint text (${message.length} bytes) is signed (Ed25519) by the pinned ledger key ${name}+${toHex(keyHash)}, key id ${keyId.slice(0, 16)}…`,
      ];
    }),
  );

  // 5. Tree size and origin
  steps.push(
    await run('tree-size', async () => {
      if (noteError) return [false, noteError];
      const treeSize = toU64(inclusion.treeSize, 'inclusion.treeSize');
      const problems = [];
      if (note.size !== treeSize) problems.push(`the checkpoint's tree size is ${note.size}, the proof's ${treeSize}`);
      const tenant = proof && proof.tenant;
      if (typeof tenant !== 'string' || !note.origin.endsWith(`/${tenant}`)) {
        problems.push(`the checkpoint's origin ${note.origin} is not tenant ${tenant}'s log`);
      }
      if (pinnedKey && pinnedKey.keyName && note.origin !== pinnedKey.keyName) {
        problems.push(`the checkpoint's origin ${note.origin} is not the pinned log ${pinnedKey.keyName}`);
      }
      return problems.length
        ? [false, problems.join('; ')]
        : [true, `the checkpoint is of ${note.origin} at tree size ${note.size}, the proof's tree size`];
    }),
  );

  const ok = steps.every((s) => s.ok === true || (s.ok === null && s.step === 'payload-hash'));
  return { ok, steps };
}

// ---------------------------------------------------------------------------------------------
// Rendering

/**
 * Fills `listElement` (`ol#verify-steps`) with one `li[data-step][data-ok=true|false|skipped]`
 * per step and sets `resultElement` (`#verify-result`) to `data-outcome=verified|failed` with a
 * sentence saying what was verified and what was not.
 */
export function renderSteps(result, listElement, resultElement) {
  const doc = listElement.ownerDocument;
  listElement.replaceChildren();
  for (const s of result.steps) {
    const li = doc.createElement('li');
    li.dataset.step = s.step;
    li.dataset.ok = s.ok === null ? 'skipped' : String(s.ok);
    const label = doc.createElement('strong');
    label.textContent = `${LABELS[s.step] || s.step}: ${s.ok === null ? 'skipped' : s.ok ? 'ok' : 'FAILED'}`;
    li.append(label, ' \u2014 ', s.detail);
    listElement.append(li);
  }
  const names = (filter) => result.steps.filter(filter).map((s) => (LABELS[s.step] || s.step).toLowerCase());
  const passed = names((s) => s.ok === true);
  const failed = names((s) => s.ok === false);
  const skipped = names((s) => s.ok === null);
  const parts = [];
  if (result.ok) {
    parts.push(`Verified in this browser against the pinned ledger key: ${passed.join(', ')}.`);
  } else {
    parts.push(`Verification FAILED: ${failed.join(', ')}.`);
    if (passed.length) parts.push(`Verified: ${passed.join(', ')}.`);
  }
  if (skipped.length) parts.push(`Not checked: ${skipped.join(', ')} (the payload is redacted).`);
  resultElement.dataset.outcome = result.ok ? 'verified' : 'failed';
  resultElement.textContent = parts.join(' ');
}

/** A result whose every step failed for one reason (no proof to check). */
function unchecked(reason) {
  return { ok: false, steps: STEPS.map((name) => step(name, false, `not checked: ${reason}`)) };
}

/**
 * On the entry page (`/t/{tenant}/entries/{seq}`): reads the pinned key from
 * `script#ledger-key`, fetches `<page>/proof.json`, verifies it and renders the steps.
 */
export async function init(doc = document) {
  const list = doc.getElementById('verify-steps');
  const resultElement = doc.getElementById('verify-result');
  if (!list || !resultElement) return null;
  let result;
  try {
    const keyScript = doc.getElementById('ledger-key');
    if (!keyScript) throw new Error('the page pins no ledger key (script#ledger-key)');
    const pinnedKey = JSON.parse(keyScript.textContent);
    const url = doc.location.pathname.replace(/\/+$/, '') + '/proof.json';
    const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`${url} answered ${response.status} ${response.statusText}`);
    const proof = await response.json();
    result = await verifyEntry(proof, pinnedKey);
  } catch (error) {
    result = unchecked(error && error.message ? error.message : String(error));
  }
  renderSteps(result, list, resultElement);
  return result;
}

if (typeof document !== 'undefined' && document.getElementById('verify-steps')) {
  init();
}

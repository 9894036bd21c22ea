// mailhost's STRICT copy of ../../../shared/peers/graph-double.js (tests/peers/, owned by the graph
// plugin's tests). Started per test on an ephemeral port (GRAPH_PORT=0; it prints
// "graph-double listening on https://127.0.0.1:PORT"), with its own PEERS_DIR holding tls/.
// Stricter than the shared double, where Microsoft's documentation is:
//   * upload chunks: Content-Length given, Content-Type application/octet-stream, each chunk
//     at most 4 MB and, except the last, a multiple of 320 KiB; no Authorization header;
//   * createUploadSession: attachmentType "file", size 1 byte..150 MB;
//   * POST without a body must carry Content-Length (Graph answers 411 otherwise);
//   * at most 4 concurrent requests per mailbox (uploads count for their draft's mailbox);
//     the 5th gets 429 ApplicationThrottled "MailboxConcurrency" with Retry-After;
//   * token requests must be application/x-www-form-urlencoded;
//   * JSON recipients must have emailAddress.address; internetMessageHeaders must be named x-….
// REQUEST_LIMIT=BYTES makes non-upload requests over BYTES get 413 (to test the 413 fallback).
// Added for tests: GET on an upload URL gives the session's nextExpectedRanges (as Graph's
// upload sessions do); DELETE /v1.0/users/{u}/messages/{id} removes a draft (204);
// POST /_revoke forgets every issued token (a revoked/rotated key: Graph then answers 401);
// an attachment named flaky-* loses its second chunk mid-way: the double keeps the chunk's first
// 320 KiB and drops the connection, so the client must ask where to resume;
// /_stats adds maxInflight, concurrencyRejected, chunks, maxChunk, uploadAuthHeaders, resumes.
//
// HTTPS double of the Microsoft identity platform token endpoint and of the Microsoft Graph
// mail routes mailhost uses (plain Node, no packages). Microsoft itself is unreachable here.
//   https://127.0.0.1:8443   (certificate: $PEERS_DIR/tls/cert.pem; GRAPH_PORT changes the port)
// Identity:  POST /{tenant}/oauth2/v2.0/token   form-encoded, client_credentials only
//   tenant test-tenant, client_id test-client, client_secret test-secret, scope ending in /.default
//   -> 200 {token_type: "Bearer", expires_in, access_token}; errors as Microsoft sends them:
//   wrong secret 401 invalid_client AADSTS7000215, unknown client 400 unauthorized_client
//   AADSTS700016, unknown tenant 400 AADSTS90002, bad scope 400 AADSTS1002012.
//   TOKEN_TTL env sets expires_in (default 3599 s). Tokens are JWT-shaped with the claims aud
//   (the scope's resource), roles, exp: scope https://graph.microsoft.com/.default gives
//   Mail.Send, Mail.ReadWrite, User.Read.All; https://outlook.office365.com/.default gives
//   SMTP.SendAsApp, IMAP.AccessAsApp. client_id test-client-sendonly (same secret) gets only the
//   send roles, so drafts and uploads answer 403 ErrorAccessDenied.
//   Graph refuses a token for another audience (401 "Invalid audience"), as the real one does.
// Introspection (RFC 7662, used by the Dovecot and SMTP peers for XOAUTH2/OAUTHBEARER):
//   POST /oauth2/introspect  token=...  -> {active, username: "testuser"}; accepts unexpired
//   tokens issued for https://outlook.office365.com and the fixed token test-access-token.
// Graph (Bearer token required; mailbox testuser@example.com; others are unknown users):
//   GET  /v1.0/users/{u}                                     the mailbox (a cheap check call)
//   POST /v1.0/users/{u}/sendMail                            JSON {message, saveToSentItems} or base64 MIME (text/plain) -> 202
//   POST /v1.0/users/{u}/messages                            draft from JSON or base64 MIME -> 201 {id, webLink}
//   POST /v1.0/users/{u}/messages/{id}/attachments           small attachment (JSON) -> 201
//   POST /v1.0/users/{u}/messages/{id}/attachments/createUploadSession  -> 201 {uploadUrl}
//   PUT  /upload/{session}                                   chunks with Content-Range, no Authorization header
//   POST /v1.0/users/{u}/messages/{id}/send                  -> 202
//   GET  /_stats                                             counters for tests (not a Graph route)
// Requests over 4 MB get 413; a message with more than 500 recipients (To + Cc + Bcc,
// Microsoft 365's limit per message) gets 400 ErrorInvalidRecipients. Faults by a recipient's local part:
//   throttle@  first request for that message gets 429 with Retry-After: 1, the retry succeeds
//   graph-5xx@ always 503 with Retry-After: 1
// Stored: $PEERS_DIR/graph/sent/<n>.eml|.json, drafts in $PEERS_DIR/graph/drafts/<id>.json
'use strict';
const fs = require('fs'), path = require('path'), https = require('https'), crypto = require('crypto');
const dir = process.env.PEERS_DIR; let port = Number(process.env.GRAPH_PORT || 8443);
const TTL = Number(process.env.TOKEN_TTL || 3599), MAILBOX = 'testuser@example.com', LIMIT = 4 * 1024 * 1024;
// REQUEST_LIMIT (bytes) lowers the size at which non-upload requests get 413 (tests of the 413 fallback).
const REQUEST_LIMIT = Number(process.env.REQUEST_LIMIT || LIMIT + 65536);
for (const d of ['sent', 'drafts']) fs.mkdirSync(path.join(dir, 'graph', d), { recursive: true });
const tokens = new Map(), drafts = new Map(), uploads = new Map(), throttled = new Set();
const stats = { tokenRequests: 0, sendMail: 0, drafts: 0, uploads: 0, sends: 0, throttled: 0,
  maxInflight: 0, concurrencyRejected: 0, chunks: 0, maxChunk: 0, uploadAuthHeaders: 0, resumes: 0, statusQueries: 0, deletes: 0 };
const inflight = new Map();
const CHUNK_UNIT = 320 * 1024, MAX_ATTACHMENT = 150 * 1024 * 1024;
// Numbering goes on after a restart, so nothing stored earlier is overwritten.
let seq = Math.max(0, ...fs.readdirSync(path.join(dir, 'graph', 'sent')).map(f => parseInt(f, 10) || 0));

function reply(res, code, body, headers = {}) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'request-id': crypto.randomUUID(), ...headers });
  res.end(data);
}
const graphError = (res, code, gcode, message, headers) => reply(res, code, { error: { code: gcode, message } }, headers);
const aadError = (res, code, error, aadsts, text) => reply(res, code, {
  error, error_description: `${aadsts}: ${text}`, error_codes: [Number(aadsts.slice(6))],
  timestamp: new Date().toISOString().replace('T', ' ').slice(0, 19) + 'Z',
  trace_id: crypto.randomUUID(), correlation_id: crypto.randomUUID(),
});

// Mail servers (Dovecot, the SMTP peer) accept test-access-token or an unexpired token issued
// for Exchange Online's audience, as Microsoft 365 IMAP/SMTP do; a Graph token is refused there.
function introspect(res, body) {
  const t = new URLSearchParams(body).get('token') || '';
  const info = tokens.get(t);
  const active = t === 'test-access-token' || (info && info.exp > Date.now() && info.aud === OUTLOOK);
  reply(res, 200, active ? { active: true, username: 'testuser', token_type: 'Bearer' } : { active: false });
}

// Access tokens are JWT-shaped like Entra ID's (header.claims.signature); clients may read the
// claims (aud, roles, exp) but cannot verify the signature, which is random here.
const GRAPH = 'https://graph.microsoft.com', OUTLOOK = 'https://outlook.office365.com';
const ROLES = {
  [GRAPH]: ['Mail.Send', 'Mail.ReadWrite', 'User.Read.All'],
  [OUTLOOK]: ['SMTP.SendAsApp', 'IMAP.AccessAsApp'],
};
function issue(clientId, scope) {
  const aud = scope.replace(/\/\.default$/, '');
  const now = Math.floor(Date.now() / 1000);
  let roles = ROLES[aud] || [];
  if (clientId === 'test-client-sendonly') roles = roles.filter(r => r === 'Mail.Send' || r === 'SMTP.SendAsApp');
  const b64 = o => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwt = [b64({ typ: 'JWT', alg: 'RS256', kid: 'test' }),
    b64({ aud, iss: 'https://sts.windows.net/test-tenant/', tid: 'test-tenant', appid: clientId, roles, iat: now, nbf: now, exp: now + TTL }),
    crypto.randomBytes(32).toString('base64url')].join('.');
  tokens.set(jwt, { exp: Date.now() + TTL * 1000, aud, roles });
  return jwt;
}

function token(req, res, tenant, body) {
  stats.tokenRequests++;
  if (!(req.headers['content-type'] || '').toLowerCase().startsWith('application/x-www-form-urlencoded'))
    return aadError(res, 400, 'invalid_request', 'AADSTS900144', "The request body must contain the following parameter: 'grant_type'.");
  const f = new URLSearchParams(body);
  if (tenant !== 'test-tenant') return aadError(res, 400, 'invalid_request', 'AADSTS90002', `Tenant '${tenant}' not found.`);
  if (f.get('grant_type') !== 'client_credentials') return aadError(res, 400, 'unsupported_grant_type', 'AADSTS70003', 'The app requested an unsupported grant type.');
  if (!['test-client', 'test-client-sendonly'].includes(f.get('client_id'))) return aadError(res, 400, 'unauthorized_client', 'AADSTS700016', `Application with identifier '${f.get('client_id')}' was not found in the directory.`);
  if (f.get('client_secret') !== 'test-secret') return aadError(res, 401, 'invalid_client', 'AADSTS7000215', 'Invalid client secret provided.');
  if (!(f.get('scope') || '').endsWith('/.default')) return aadError(res, 400, 'invalid_scope', 'AADSTS1002012', 'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed.');
  const t = issue(f.get('client_id'), f.get('scope'));
  reply(res, 200, { token_type: 'Bearer', expires_in: TTL, ext_expires_in: TTL, access_token: t });
}

// Recipients of a JSON message or a MIME message (To/Cc/Bcc headers).
function recipients(kind, payload) {
  if (kind === 'json') {
    const m = payload.message || payload;
    return ['toRecipients', 'ccRecipients', 'bccRecipients'].flatMap(k => (m[k] || []).map(r => r.emailAddress && r.emailAddress.address || ''));
  }
  const head = payload.split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, ' ');
  return head.split(/\r?\n/).filter(l => /^(to|cc|bcc):/i.test(l)).flatMap(l => l.match(/[^\s<>,"]+@[^\s<>,"]+/g) || []);
}

// Parses a body as Graph does: JSON, or base64 MIME with Content-Type text/plain.
function parseMessage(req, body) {
  const ct = (req.headers['content-type'] || '').toLowerCase();
  if (ct.startsWith('application/json')) {
    try { return { kind: 'json', payload: JSON.parse(body.toString('utf8')) }; } catch { return { error: 'Unable to read JSON request payload.' }; }
  }
  if (ct.startsWith('text/plain')) {
    const text = body.toString('ascii').trim();
    if (!/^[A-Za-z0-9+/=\r\n]+$/.test(text)) return { error: 'Invalid base64 string for MIME content.' };
    return { kind: 'mime', payload: Buffer.from(text, 'base64').toString('latin1') };
  }
  return { error: `Unsupported Content-Type '${ct}'.` };
}

function store(sub, m) {
  const n = String(++seq).padStart(6, '0'), base = path.join(dir, 'graph', sub, n);
  const [ext, data] = m.kind === 'mime' ? ['.eml', Buffer.from(m.payload, 'latin1')] : ['.json', JSON.stringify(m.payload, null, 2)];
  fs.writeFileSync(base + ext + '.tmp', data); fs.renameSync(base + ext + '.tmp', base + ext);
}

function faults(res, m, body) {
  const locals = recipients(m.kind, m.payload).map(a => a.split('@')[0].toLowerCase());
  if (locals.includes('graph-5xx')) { graphError(res, 503, 'ServiceUnavailable', 'The service is temporarily unavailable.', { 'Retry-After': '1' }); return true; }
  const key = crypto.createHash('sha256').update(body).digest('hex');
  if (locals.includes('throttle') && !throttled.has(key)) {
    throttled.add(key); stats.throttled++;
    graphError(res, 429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': '1' }); return true;
  }
  return false;
}

function graph(req, res, parts, body) {
  const auth = (req.headers.authorization || '').match(/^Bearer (.+)$/);
  const info = auth && tokens.get(auth[1]);
  if (!auth) return graphError(res, 401, 'InvalidAuthenticationToken', 'Access token is empty.');
  if (!info) return graphError(res, 401, 'InvalidAuthenticationToken', 'IDX14100: JWT is not well formed.');
  if (info.exp < Date.now()) return graphError(res, 401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
  if (info.aud !== GRAPH) return graphError(res, 401, 'InvalidAuthenticationToken', 'Access token validation failure. Invalid audience.');
  // Application permissions, as Graph checks them: sending needs Mail.Send; drafts need Mail.ReadWrite.
  const needs = req.method === 'GET' ? 'User.Read.All' : (parts[2] === 'sendMail' ? 'Mail.Send' : 'Mail.ReadWrite');
  if (!info.roles.includes(needs))
    return graphError(res, 403, 'ErrorAccessDenied', `Access is denied. Check credentials and try again. (needs ${needs})`);
  const [, user, coll, id, sub, action] = parts; // users, {u}, sendMail|messages, {id}, attachments|send, createUploadSession
  if (decodeURIComponent(user || '').toLowerCase() !== MAILBOX) return graphError(res, 404, 'ErrorInvalidUser', `The requested user '${decodeURIComponent(user)}' is invalid.`);
  if (req.method === 'GET' && !coll) return reply(res, 200, { id: 'f0e1d2c3-0000-4000-8000-000000000001', mail: MAILBOX, userPrincipalName: MAILBOX, displayName: 'Test User' });
  if (req.method === 'DELETE' && coll === 'messages' && id && !sub) {
    if (!drafts.delete(id)) return graphError(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
    stats.deletes++; fs.rmSync(path.join(dir, 'graph', 'drafts', id + '.json'), { force: true });
    res.writeHead(204); return res.end();
  }
  if (req.method !== 'POST') return graphError(res, 405, 'Request_BadRequest', 'Method not allowed.');
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)
    return graphError(res, 411, 'LengthRequired', 'Length Required: POST requests must carry Content-Length.');
  if (coll === 'sendMail' || (coll === 'messages' && !id)) {
    const m = parseMessage(req, body);
    if (m.error) return graphError(res, 400, 'ErrorInvalidRequest', m.error);
    if (m.kind === 'json' && coll === 'sendMail' && !m.payload.message) return graphError(res, 400, 'ErrorInvalidRequest', "Missing required property 'message'.");
    if (m.kind === 'json') {
      const msg = m.payload.message || m.payload;
      for (const k of ['toRecipients', 'ccRecipients', 'bccRecipients', 'replyTo'])
        for (const r of (msg[k] || [])) if (!(r && r.emailAddress && r.emailAddress.address)) return graphError(res, 400, 'ErrorInvalidRecipients', `A recipient in ${k} has no emailAddress.address.`);
      for (const h of (msg.internetMessageHeaders || []))
        if (!/^x-/i.test(h.name || '')) return graphError(res, 400, 'InvalidInternetMessageHeader', `The internet message header name '${h.name}' should start with 'x-' or 'X-'.`);
    }
    // Exchange Online's recipient limit: 500 per message (To + Cc + Bcc).
    if (recipients(m.kind, m.payload).length > 500) return graphError(res, 400, 'ErrorInvalidRecipients', 'The message has more than 500 recipients, the limit per message.');
    if (coll === 'sendMail' && recipients(m.kind, m.payload).length === 0) return graphError(res, 400, 'ErrorInvalidRecipients', 'At least one recipient is not valid., Recipient is missing.');
    if (faults(res, m, body)) return;
    if (coll === 'sendMail') { stats.sendMail++; store('sent', m); return reply(res, 202); }
    const did = 'AAMk' + crypto.randomBytes(18).toString('base64url');
    drafts.set(did, { m, attachments: [] }); stats.drafts++;
    fs.writeFileSync(path.join(dir, 'graph', 'drafts', did + '.json'), JSON.stringify(m, null, 2));
    return reply(res, 201, { id: did, isDraft: true, webLink: `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(did)}&exvsurl=1&viewmodel=ReadMessageItem` });
  }
  const d = drafts.get(id);
  if (coll !== 'messages' || !d) return graphError(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  if (sub === 'attachments' && action === 'createUploadSession') {
    const item = (JSON.parse(body.toString() || '{}').AttachmentItem) || {};
    if (!item.name || !(item.size > 0)) return graphError(res, 400, 'ErrorInvalidRequest', 'AttachmentItem with name and size is required.');
    if (item.attachmentType !== 'file') return graphError(res, 400, 'ErrorInvalidRequest', "AttachmentItem.attachmentType must be 'file'.");
    if (item.size > MAX_ATTACHMENT) return graphError(res, 400, 'ErrorAttachmentSizeLimitExceeded', 'The attachment exceeds the maximum size of 150 MB.');
    const sid = crypto.randomBytes(16).toString('hex');
    uploads.set(sid, { draft: d, item, received: 0, chunks: [], mailbox: decodeURIComponent(user).toLowerCase(), failed: false });
    return reply(res, 201, { uploadUrl: `https://127.0.0.1:${port}/upload/${sid}`, expirationDateTime: new Date(Date.now() + 3600e3).toISOString(), nextExpectedRanges: ['0-'] });
  }
  if (sub === 'attachments') { d.attachments.push(JSON.parse(body.toString() || '{}')); return reply(res, 201, { id: 'att' + d.attachments.length }); }
  if (sub === 'send') {
    drafts.delete(id); stats.sends++; // the draft leaves Drafts, as in a real mailbox
    fs.rmSync(path.join(dir, 'graph', 'drafts', id + '.json'), { force: true });
    store('sent', { kind: 'json', payload: { draft: d.m, attachments: d.attachments } });
    return reply(res, 202);
  }
  graphError(res, 400, 'BadRequest', 'Unsupported segment.');
}

function upload(req, res, sid, body) {
  const u = uploads.get(sid);
  if (!u) return graphError(res, 404, 'ErrorItemNotFound', 'Upload session not found.');
  if (req.headers.authorization) { stats.uploadAuthHeaders++; return graphError(res, 401, 'InvalidAuthenticationToken', 'Do not send an Authorization header to the upload URL.'); }
  if (req.method === 'GET') { stats.statusQueries++; return reply(res, 200, { expirationDateTime: new Date(Date.now() + 3600e3).toISOString(), nextExpectedRanges: [`${u.received}-`] }); }
  if (req.headers['content-length'] === undefined) return graphError(res, 411, 'LengthRequired', 'Chunks must carry Content-Length.');
  if ((req.headers['content-type'] || '').toLowerCase() !== 'application/octet-stream') return graphError(res, 415, 'UnsupportedMediaType', 'Chunks must be sent as application/octet-stream.');
  if (body.length > LIMIT) return graphError(res, 413, 'RequestEntityTooLarge', 'A chunk must be at most 4 MB.');
  const last = u.received + body.length === u.item.size;
  if (!last && body.length % CHUNK_UNIT !== 0) return graphError(res, 400, 'InvalidChunkSize', `Chunk of ${body.length} bytes: chunks other than the last must be multiples of 320 KiB (327680 bytes).`);
  const r = (req.headers['content-range'] || '').match(/^bytes (\d+)-(\d+)\/(\d+)$/);
  if (!r || Number(r[1]) !== u.received || Number(r[3]) !== u.item.size || Number(r[2]) - Number(r[1]) + 1 !== body.length)
    return graphError(res, 416, 'InvalidRange', `Expected a chunk starting at ${u.received} of ${u.item.size} bytes.`);
  if (u.received !== 0 && u.resumePending) { stats.resumes++; u.resumePending = false; }
  if (/^flaky-/.test(u.item.name) && !u.failed && u.chunks.length === 1 && !last) {
    // Lose this chunk mid-way: keep its first 320 KiB, then drop the connection.
    u.failed = true; u.resumePending = true; u.chunks.push(body.subarray(0, CHUNK_UNIT)); u.received += CHUNK_UNIT;
    return req.socket.destroy();
  }
  stats.chunks++; stats.maxChunk = Math.max(stats.maxChunk, body.length);
  u.chunks.push(body); u.received += body.length;
  if (u.received < u.item.size) return reply(res, 200, { expirationDateTime: new Date(Date.now() + 3600e3).toISOString(), nextExpectedRanges: [`${u.received}-`] });
  const data = Buffer.concat(u.chunks);
  // Strict copy: keep the bytes, so tests can compare them with what they attached.
  const stored = `${sid}.bin`;
  fs.mkdirSync(path.join(dir, 'graph', 'uploads'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'graph', 'uploads', stored), data);
  u.draft.attachments.push({ name: u.item.name, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex'), stored, contentType: u.item.contentType, isInline: u.item.isInline });
  uploads.delete(sid); stats.uploads++;
  res.writeHead(201, { Location: `https://127.0.0.1:${port}/attachments/${sid}` }); res.end();
}

const tls = { key: fs.readFileSync(path.join(dir, 'tls', 'key.pem')), cert: fs.readFileSync(path.join(dir, 'tls', 'cert.pem')) };
// The mailbox a request is for: /v1.0/users/{u}/... or an upload session's draft mailbox.
function mailboxOf(req) {
  const p = (req.url || '').split('?')[0].split('/').filter(Boolean);
  if (p[0] === 'v1.0' && p[1] === 'users' && p[2] && p[3]) return decodeURIComponent(p[2]).toLowerCase();
  if (p[0] === 'upload' && uploads.has(p[1])) return uploads.get(p[1]).mailbox;
  return null;
}

const server = https.createServer(tls, (req, res) => {
  const chunks = []; let size = 0, tooBig = false;
  const mbox = mailboxOf(req); let overLimit = false;
  if (mbox) {
    const n = (inflight.get(mbox) || 0) + 1; inflight.set(mbox, n);
    stats.maxInflight = Math.max(stats.maxInflight, n); overLimit = n > 4;
    let done = false; const release = () => { if (!done) { done = true; inflight.set(mbox, inflight.get(mbox) - 1); } };
    // A request stops counting when it is answered: res.end() is called before any byte of the
    // answer leaves, so a client can never see the answer first. 'finish' alone is too late: over
    // TLS Node emits it from a later event-loop phase, and a client that got the answer and sent
    // its next request on another connection could be counted as a fifth. 'close' covers requests
    // the client abandons.
    const end = res.end.bind(res); res.end = (...args) => { release(); return end(...args); };
    res.on('close', release);
  }
  const limit = (req.url || '').startsWith('/upload/') ? LIMIT + 65536 : REQUEST_LIMIT;
  req.on('data', c => { size += c.length; if (size > limit) tooBig = true; else chunks.push(c); });
  req.on('end', () => {
    if (tooBig) return graphError(res, 413, 'RequestEntityTooLarge', 'The request is larger than 4 MB. Use an upload session.');
    if (overLimit) { stats.concurrencyRejected++; return graphError(res, 429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': '1' }); }
    const body = Buffer.concat(chunks), url = new URL(req.url, 'https://localhost'), parts = url.pathname.split('/').filter(Boolean);
    try {
      if (req.method === 'GET' && url.pathname === '/_stats') return reply(res, 200, stats);
      if (req.method === 'POST' && url.pathname === '/_revoke') { tokens.clear(); return reply(res, 200, { revoked: true }); }
      if (req.method === 'GET' && parts[0] === 'upload') return upload(req, res, parts[1], body);
      if (req.method === 'POST' && parts.length === 4 && parts[1] === 'oauth2' && parts[3] === 'token') return token(req, res, parts[0], body.toString());
      if (req.method === 'POST' && url.pathname === '/oauth2/introspect') return introspect(res, body.toString());
      if (req.method === 'PUT' && parts[0] === 'upload') return upload(req, res, parts[1], body);
      if (parts[0] === 'v1.0' && parts[1] === 'users') return graph(req, res, parts.slice(1), body);
      graphError(res, 404, 'Request_ResourceNotFound', `Resource not found for the segment '${parts[0] || ''}'.`);
    } catch (e) { graphError(res, 500, 'InternalServerError', String(e.message)); }
  });
});
server.listen(port, '127.0.0.1', () => { port = server.address().port; console.log(`graph-double listening on https://127.0.0.1:${port}`); });
process.on('SIGTERM', () => process.exit(0));

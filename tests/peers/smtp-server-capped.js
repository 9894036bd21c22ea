// An SMTP server that limits recipients per transaction, for the SMTP plugin's
// `452 too many recipients` tests (RFC 5321 4.5.3.1.10). A copy of the shared
// smtp-server peer's capture on the same npm package (smtp-server 3), with a knob
// that none of the shared peers has: the shared Node peer cannot be changed,
// smtp-sink has no limit, and Dovecot's submission and the Postfix relay are set
// up without one (Postfix's default, 1,000, needs over a thousand recipients and
// a relay that others use). Started by the tests on an ephemeral loopback port.
//
// Environment:
//   PEERS_DIR    its own state directory: mail goes to $PEERS_DIR/smtp-server/mail/<n>.eml
//                and <n>.json, each written then renamed
//   NODE_PATH    where the smtp-server package is ($PEERS_DIR/node/node_modules of the peers)
//   PORT         0 (default) for an ephemeral port; the first line on stdout is
//                "smtp-server-capped listening on 127.0.0.1:<port>"
//   RCPT_LIMIT   recipients accepted per transaction (default 1000, as Postfix);
//                more get "452 4.5.3 Too many recipients", as Postfix answers
// Plain SMTP, no TLS, no AUTH; PIPELINING, 8BITMIME, SMTPUTF8, DSN, enhanced status codes.
// Recipient rcpt-5xx@ gets 550 at RCPT (a per-recipient refusal next to the limit).
// Each message's .json: mailFrom, rcptTo, connection (a number per TCP connection),
// transaction (1, 2, ... within that connection).
'use strict';
const fs = require('fs');
const path = require('path');
const { SMTPServer } = require('smtp-server');

const dir = process.env.PEERS_DIR;
const mailDir = path.join(dir, 'smtp-server', 'mail');
fs.mkdirSync(mailDir, { recursive: true });
const LIMIT = Number(process.env.RCPT_LIMIT || 1000);
let seq = 0, connections = 0;
const perConnection = new Map();

function fault(code, text) { const e = new Error(text); e.responseCode = code; return e; }

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  disableReverseLookup: true,
  hideENHANCEDSTATUSCODES: false,
  hideDSN: false,
  size: 64 * 1024 * 1024,
  logger: false,
  onConnect(session, cb) { session.connectionNo = ++connections; cb(); },
  onRcptTo(addr, session, cb) {
    if (session.envelope.rcptTo.length >= LIMIT) return cb(fault(452, 'Too many recipients'));
    if (addr.address.split('@')[0].toLowerCase() === 'rcpt-5xx') return cb(fault(550, 'No such user here'));
    cb();
  },
  onData(stream, session, cb) {
    const chunks = [];
    stream.on('data', c => chunks.push(c));
    stream.on('end', () => {
      const tx = (perConnection.get(session.connectionNo) || 0) + 1;
      perConnection.set(session.connectionNo, tx);
      const n = String(++seq).padStart(6, '0'), base = path.join(mailDir, n);
      const meta = {
        mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
        rcptTo: session.envelope.rcptTo.map(r => r.address),
        connection: session.connectionNo,
        transaction: tx,
      };
      fs.writeFileSync(base + '.eml.tmp', Buffer.concat(chunks));
      fs.writeFileSync(base + '.json.tmp', JSON.stringify(meta));
      fs.renameSync(base + '.eml.tmp', base + '.eml');
      fs.renameSync(base + '.json.tmp', base + '.json');
      cb(null, `Ok: queued as ${n}`);
    });
  },
});
server.on('error', e => console.error('smtp-server-capped:', e.message));
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`smtp-server-capped listening on 127.0.0.1:${server.server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));

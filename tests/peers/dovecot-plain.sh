#!/usr/bin/env bash
# A private Dovecot 2.3 for the IMAP plugin's tests, derived from the shared
# peer script (../shared/peers/dovecot.sh): IMAP only (STARTTLS on one port), the
# same user testuser/testpass, but a provider of the older kind — no SPECIAL-USE
# attributes, every folder below "INBOX." (separator "."), German folder names
# ("INBOX.Entwürfe", "INBOX.Gesendete Elemente"). Runs in the foreground of its
# own directory so it never touches the shared peer.
#   dovecot-plain.sh start DIR PORT   (PEERS_DIR must hold tls/cert.pem and key.pem)
#   dovecot-plain.sh stop DIR
set -eu
cmd=${1:?usage: $0 start DIR PORT | stop DIR}
D=${2:?state directory}
case $cmd in
  start)
    PORT=${3:?port}
    : "${PEERS_DIR:?PEERS_DIR must be set (its tls/ holds the certificate)}"
    mkdir -p "$D/state" "$D/mail"
    D=$(cd "$D" && pwd)
    # Dovecot's auth process (its own user when started as root) reads the users file here.
    chmod 755 "$D"
    # Unix sockets need a short path (108 bytes).
    RUN="/tmp/mailhost-dovecot-plain-$(echo "$D" | md5sum | cut -c1-12)"
    mkdir -p "$RUN"
    echo "testuser:{PLAIN}testpass" > "$D/users"
    # Folders as an old Courier-style server keeps them (Maildir++ names in modified UTF-7).
    for f in "" ".Entw&APw-rfe" ".Gesendete Elemente"; do
      mkdir -p "$D/mail/testuser/Maildir/$f/cur" "$D/mail/testuser/Maildir/$f/new" "$D/mail/testuser/Maildir/$f/tmp"
    done
    if [ "$(id -u)" = 0 ]; then
      uid=$(id -u nobody); gid=$(id -g nobody); users=""
      chown -R "$uid:$gid" "$D/mail"
    else
      uid=$(id -u); gid=$(id -g); u=$(id -un)
      users="default_login_user = $u
default_internal_user = $u
default_internal_group = $(id -gn)
service anvil {
  chroot =
}
service imap-login {
  chroot =
}"
    fi
    cat > "$D/dovecot.conf" <<CONF
protocols = imap
hostname = localhost
listen = 127.0.0.1
base_dir = $RUN
state_dir = $D/state
log_path = $D/dovecot.log
instance_name = dovecot-plain-$PORT
$users
ssl = yes
ssl_cert = <$PEERS_DIR/tls/cert.pem
ssl_key = <$PEERS_DIR/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN $D/users
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$D/mail/%u
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = .
  prefix = INBOX.
}
service imap-login {
  inet_listener imap {
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
CONF
    nohup /usr/sbin/dovecot -F -c "$D/dovecot.conf" >"$D/run.log" 2>&1 </dev/null &
    echo $! > "$D/pid"
    for _ in $(seq 200); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then exit 0; fi
      kill -0 "$(cat "$D/pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "dovecot-plain did not open port $PORT:" >&2
    tail -n 20 "$D/run.log" "$D/dovecot.log" >&2 2>/dev/null || true
    exit 1 ;;
  stop)
    [ -f "$D/pid" ] || exit 0
    pid=$(cat "$D/pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$D/pid"
    rm -rf "/tmp/mailhost-dovecot-plain-$(cd "$D" && pwd | md5sum | cut -c1-12)" ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac

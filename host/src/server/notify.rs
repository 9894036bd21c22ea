//! What `serve` tells a service manager that asked (`$NOTIFY_SOCKET`, as
//! systemd's `Type=notify` sets it; see config/mailhost.service): ready once
//! it listens and its workers run, reloading while SIGHUP applies the config
//! file, stopping when SIGTERM or SIGINT began the drain. Without the
//! variable (or off Unix) nothing is sent. A failure to send is logged at
//! debug level only: the service works the same without a manager.

/// What to say.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(unix), allow(dead_code))]
pub enum Event<'a> {
    /// Listening and draining; the text is the manager's status line.
    Ready(&'a str),
    Reloading,
    Stopping,
}

/// Says `event` to the service manager, if there is one.
pub fn tell(event: Event<'_>) {
    #[cfg(unix)]
    {
        use sd_notify::NotifyState;
        let sent = match event {
            Event::Ready(status) => {
                sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
            }
            Event::Reloading => match NotifyState::monotonic_usec_now() {
                Ok(now) => sd_notify::notify(&[NotifyState::Reloading, now]),
                Err(e) => Err(e),
            },
            Event::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
        };
        if let Err(e) = sent {
            tracing::debug!("serve: could not tell the service manager {event:?}: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = event;
}

//! The plugin's side: starts the helper, hands it one request, reads its
//! answer within a time limit and a size limit, and says how it went.
//!
//! The helper's answer is untrusted input: it is read as one frame of at most
//! [`MAX_ANSWER`] bytes, its stderr only as far as [`STDERR_KEPT`] bytes, and
//! a helper that does not answer in time is killed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::protocol::{encode, read_frame, Answer, FrameError, MAX_ANSWER, MAX_REQUEST};
use crate::Request;

/// How much of the helper's stderr is kept for an error message.
pub const STDERR_KEPT: usize = 2048;

/// How long to wait for a helper that has answered to exit (and for one that
/// closed its output without answering to end).
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What went wrong with the helper process (not with the mail client: the
/// client's answers come back in [`Answer`]).
#[derive(Debug)]
pub enum HelperError {
    /// The helper file does not exist.
    Missing { program: PathBuf },
    /// It exists but could not be started (e.g. 32-bit programs cannot run here).
    Start {
        program: PathBuf,
        error: std::io::Error,
    },
    /// It did not answer within the limit and was killed.
    TimedOut { after: Duration },
    /// It ended without an answer.
    Crashed { status: String, stderr: String },
    /// It answered something that is not an answer (too large, not the protocol).
    BadAnswer { reason: String, stderr: String },
}

impl std::fmt::Display for HelperError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |stderr: &str| {
            if stderr.is_empty() {
                String::new()
            } else {
                format!("; its error output: {stderr}")
            }
        };
        match self {
            HelperError::Missing { program } => {
                write!(f, "the helper {} does not exist", program.display())
            }
            HelperError::Start { program, error } => {
                write!(f, "cannot start the helper {}: {error}", program.display())
            }
            HelperError::TimedOut { after } => write!(
                f,
                "the helper did not answer within {} s and was stopped",
                after.as_secs()
            ),
            HelperError::Crashed { status, stderr } => write!(
                f,
                "the helper ended without an answer ({status}){}",
                tail(stderr)
            ),
            HelperError::BadAnswer { reason, stderr } => {
                write!(
                    f,
                    "the helper's answer is unusable: {reason}{}",
                    tail(stderr)
                )
            }
        }
    }
}

impl std::error::Error for HelperError {}

/// How an exit status reads in a message; Windows' exception codes by name.
pub fn describe_status(status: &ExitStatus) -> String {
    match status.code() {
        Some(code) => {
            let ntstatus = code as u32;
            let name = match ntstatus {
                0xC000_0005 => Some("an access violation: the mail client crashed in it"),
                0xC000_0135 => Some("a DLL it needs is missing"),
                0xC000_007B => Some("an image of the wrong bitness or format"),
                0xC000_0409 => Some("it stopped itself (fail-fast or a panic)"),
                0xC000_00FD => Some("a stack overflow"),
                _ => None,
            };
            match name {
                Some(n) => format!("exit code {ntstatus:#010X}, {n}"),
                None => format!("exit code {code}"),
            }
        }
        None => status.to_string(),
    }
}

/// Lossy UTF-8 of at most [`STDERR_KEPT`] bytes, control characters as spaces.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        /// `CREATE_NO_WINDOW`: no console window flashes up for a desktop user.
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NO_WINDOW);
    }
    cmd
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `program` with `request`: its answer, or what went wrong. The helper
/// must answer within `limit`; it is killed otherwise.
///
/// A helper that has answered is given [`EXIT_GRACE`] to exit and is then
/// left running, not killed: a client may keep a modeless compose window
/// (`MAPI_DIALOG_MODELESS`) open in it after the call returned.
pub fn exchange(program: &Path, request: &Request, limit: Duration) -> Result<Answer, HelperError> {
    exchange_with(program, request, limit, EXIT_GRACE)
}

/// [`exchange`] with another grace period for the exit.
pub fn exchange_with(
    program: &Path,
    request: &Request,
    limit: Duration,
    exit_grace: Duration,
) -> Result<Answer, HelperError> {
    let frame = encode(request, MAX_REQUEST).map_err(|e| HelperError::BadAnswer {
        reason: format!("the request cannot be encoded: {e}"),
        stderr: String::new(),
    })?;
    if !program.is_file() {
        return Err(HelperError::Missing {
            program: program.to_path_buf(),
        });
    }
    let mut child = command(program).spawn().map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            HelperError::Missing {
                program: program.to_path_buf(),
            }
        } else {
            HelperError::Start {
                program: program.to_path_buf(),
                error,
            }
        }
    })?;
    let started = Instant::now();
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill(&mut child);
        return Err(HelperError::Start {
            program: program.to_path_buf(),
            error: std::io::Error::other("its standard streams were not connected"),
        });
    };

    // Writing and reading on a thread of their own: a helper that neither
    // reads nor answers must not hold the caller past the limit.
    let (answer_tx, answer_rx) = mpsc::channel();
    let io = std::thread::Builder::new()
        .name("mailhost-mapi32-io".into())
        .spawn(move || {
            use std::io::Write;
            // A helper that died before reading shows as a missing answer.
            let _ = stdin.write_all(&frame).and_then(|()| stdin.flush());
            drop(stdin);
            let _ = answer_tx.send(read_frame::<Answer>(&mut stdout, MAX_ANSWER));
        });
    let (err_tx, err_rx) = mpsc::channel();
    let errors = std::thread::Builder::new()
        .name("mailhost-mapi32-stderr".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut stderr = stderr;
            let _ = (&mut stderr)
                .take(STDERR_KEPT as u64)
                .read_to_end(&mut kept);
            // Drain the rest so the helper never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            let _ = err_tx.send(printable(&kept));
        });
    if io.is_err() || errors.is_err() {
        kill(&mut child);
        return Err(HelperError::Start {
            program: program.to_path_buf(),
            error: std::io::Error::other("cannot start a thread to talk to it"),
        });
    }
    let stderr_text = |rx: &mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_millis(500))
            .unwrap_or_default()
    };

    let answer = match answer_rx.recv_timeout(limit) {
        Ok(answer) => answer,
        Err(_) => {
            kill(&mut child);
            return Err(HelperError::TimedOut { after: limit });
        }
    };
    match answer {
        Ok(answer) => {
            // It answered: it normally exits at once. One still running after
            // the grace period may be showing a modeless window: left alone.
            let deadline = Instant::now() + exit_grace;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(answer)
        }
        Err(FrameError::Closed) | Err(FrameError::Io(_)) => {
            // No answer: it ended (or closed its output, which ends it soon).
            let remaining = limit.saturating_sub(started.elapsed());
            let deadline = Instant::now() + remaining.min(exit_grace);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break describe_status(&status),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        kill(&mut child);
                        break "it closed its output and was stopped".to_string();
                    }
                }
            };
            Err(HelperError::Crashed {
                status,
                stderr: stderr_text(&err_rx),
            })
        }
        Err(e) => {
            kill(&mut child);
            Err(HelperError::BadAnswer {
                reason: e.to_string(),
                stderr: stderr_text(&err_rx),
            })
        }
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use crate::SimpleMessage;

    fn request() -> Request {
        Request::new(
            SimpleMessage {
                subject: "s".into(),
                body: "b".into(),
                recipients: vec![],
                files: vec![],
            },
            1,
            0,
        )
    }

    /// A stand-in helper: a shell script.
    ///
    /// A child `sh` writes it: written from this process, the open file would
    /// be inherited by another test's concurrent spawn until that child's
    /// exec, and running the script then fails with "Text file busy".
    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("helper.sh");
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", r#"printf '%s' "$1" > "$2" && chmod 755 "$2""#, "sh"])
            .arg(format!("#!/bin/sh\n{body}\n"))
            .arg(&p)
            .status()
            .unwrap();
        assert!(status.success());
        p
    }

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn a_missing_helper_is_named() {
        let e = exchange(
            Path::new("/nonexistent/mailhost-mapi32.exe"),
            &request(),
            LIMIT,
        )
        .unwrap_err();
        assert!(matches!(e, HelperError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/mailhost-mapi32.exe"));
    }

    #[test]
    fn a_helper_that_cannot_start_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("not-executable");
        std::fs::write(&p, "no").unwrap();
        let e = exchange(&p, &request(), LIMIT).unwrap_err();
        assert!(matches!(e, HelperError::Start { .. }), "{e}");
        assert!(e.to_string().starts_with("cannot start the helper"), "{e}");
    }

    #[test]
    fn a_helper_ending_without_an_answer_has_crashed() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "cat >/dev/null; echo 'client DLL blew up' >&2; exit 3",
        );
        let e = exchange(&p, &request(), LIMIT).unwrap_err();
        match &e {
            HelperError::Crashed { status, stderr } => {
                assert_eq!(status, "exit code 3");
                assert_eq!(stderr, "client DLL blew up");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_oversized_or_garbled_answer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A length of 0xFFFFFFFF, then endless output: refused from the length.
        let p = script(
            dir.path(),
            "cat >/dev/null; printf '\\377\\377\\377\\377'; exec yes",
        );
        let e = exchange(&p, &request(), LIMIT).unwrap_err();
        assert!(matches!(e, HelperError::BadAnswer { .. }), "{e}");
        assert!(
            e.to_string().contains("more than the 65536 accepted"),
            "{e}"
        );
        let p = script(
            dir.path(),
            "cat >/dev/null; printf '\\004\\000\\000\\000nope'",
        );
        let e = exchange(&p, &request(), LIMIT).unwrap_err();
        assert!(e.to_string().contains("not a valid frame"), "{e}");
    }

    #[test]
    fn a_helper_that_does_not_answer_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        // Reads the request, then never answers.
        let p = script(dir.path(), "cat >/dev/null; exec sleep 3600");
        let e = exchange(&p, &request(), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, HelperError::TimedOut { .. }), "{e}");
    }

    #[test]
    fn the_answer_is_read_and_the_request_arrives_whole() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("request.bin");
        let answer = encode(&Answer::returned(21), MAX_ANSWER).unwrap();
        let answer_file = dir.path().join("answer.bin");
        std::fs::write(&answer_file, &answer).unwrap();
        let p = script(
            dir.path(),
            &format!(
                "cat > '{}'; cat '{}'",
                seen.display(),
                answer_file.display()
            ),
        );
        let a = exchange(&p, &request(), LIMIT).unwrap();
        assert_eq!(a, Answer::returned(21));
        let got: Request =
            read_frame(&mut &std::fs::read(&seen).unwrap()[..], MAX_REQUEST).unwrap();
        assert_eq!(got, request());
    }

    #[test]
    fn a_helper_that_answers_and_stays_is_left_running() {
        // A modeless window may live on in the helper after its answer.
        let dir = tempfile::tempdir().unwrap();
        let answer_file = dir.path().join("answer.bin");
        std::fs::write(
            &answer_file,
            encode(&Answer::returned(0), MAX_ANSWER).unwrap(),
        )
        .unwrap();
        let done = dir.path().join("window closed");
        let p = script(
            dir.path(),
            &format!(
                "cat >/dev/null; cat '{}'; exec >/dev/null; sleep 1; touch '{}'",
                answer_file.display(),
                done.display()
            ),
        );
        let a = exchange_with(&p, &request(), LIMIT, Duration::from_millis(100)).unwrap();
        assert_eq!(a, Answer::returned(0));
        // Not killed: it finishes on its own.
        let waited = std::time::Instant::now();
        while !done.exists() {
            assert!(waited.elapsed() < LIMIT, "the helper was stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn statuses_read_as_people_need_them() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_status(&ExitStatus::from_raw(2 << 8)),
            "exit code 2"
        );
    }
}

//! The terminal front end.
//!
//! - [`model`]: what is shown; [`update`]: how messages change it (pure);
//! - [`view`]: how it is drawn (one file per pane); [`keymap`]: the key table;
//! - this file: the thin shell that owns the terminal and moves messages.
//!
//! The loop redraws only when something changed: at most [`FRAME`] apart after a key (or a
//! resize, a paste), at most [`NET_FRAME`] apart when only the network changed it. Under a
//! flood it draws ten frames a second whatever the rate, and a frame costs what the screen
//! shows, not how many events came. It drains network events in batches so a flood never
//! starves the keyboard. It never awaits the network:
//! commands go out with `try_send`, and a full queue is shown as "busy".

pub mod explorer;
pub mod export;
pub mod form;
pub mod itemview;
pub mod keymap;
pub mod model;
pub mod owner;
pub mod search;
pub mod stats;
pub mod theme;
pub mod update;
pub mod view;

use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream,
};
use futures::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::error::TrySendError;

use self::model::{Level, Model};
use self::update::{Effect, Msg, update};
use crate::xmpp::{Command, NetHandle};

/// Minimum time between two frames after the user did something (about 60 frames/s at most).
pub const FRAME: Duration = Duration::from_millis(16);
/// Minimum time between two frames when only network events changed the screen. A lone
/// event after a quiet spell is still drawn at once.
pub const NET_FRAME: Duration = Duration::from_millis(100);
/// Network events handled before the loop looks at the keyboard again.
const NET_BATCH: usize = 512;

/// Set before the TUI starts, this makes it panic after its first frame (the tests use it to
/// check that a panic leaves the terminal as it was).
pub const TEST_PANIC_ENV: &str = "PUBSUB_TUI_TEST_PANIC";

/// Undo everything [`start_terminal`] turned on. Errors are ignored: the terminal may be gone
/// (a closed window), and this must not panic then, least of all inside a panic hook.
fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        crossterm::terminal::LeaveAlternateScreen
    );
}

/// Raw mode, the alternate screen, mouse capture and bracketed paste, with a panic hook that
/// undoes all of them before the panic is reported. (ratatui's own `init` hook restores only
/// the first two, and prints with `eprintln!`, which panics again when the terminal is gone.)
fn start_terminal() -> std::io::Result<ratatui::DefaultTerminal> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EnterAlternateScreen,
        EnableMouseCapture,
        EnableBracketedPaste
    )?;
    ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
}

/// Run the TUI until the user quits. Restores the terminal on every exit path: a panic too.
/// `state` keeps the nodes followed or left for the next start (`None`: not kept).
pub async fn run(
    net: NetHandle,
    model: Model,
    state: Option<crate::state::FollowState>,
) -> anyhow::Result<()> {
    let result = match start_terminal() {
        Ok(mut terminal) => {
            let result = event_loop(&mut terminal, net, model, state).await;
            if terminal.show_cursor().is_err() {
                // The terminal is gone (a closed window): dropping the handle would try again
                // and complain on stderr, which is gone too.
                std::mem::forget(terminal);
            }
            result
        }
        Err(e) => Err(e.into()),
    };
    restore_terminal();
    result
}

fn to_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) => Some(Msg::Key(k)),
        Event::Mouse(m) => Some(Msg::Mouse(m)),
        Event::Paste(p) => Some(Msg::Paste(p)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        Event::FocusGained | Event::FocusLost => None,
    }
}

/// When to draw the next frame.
struct Pace {
    /// Something changed since the last frame.
    dirty: bool,
    /// The user changed it (a key, a paste, a resize): draw at the [`FRAME`] pace, not the
    /// [`NET_FRAME`] one.
    urgent: bool,
    last: tokio::time::Instant,
}

impl Pace {
    fn new() -> Self {
        let now = tokio::time::Instant::now();
        Self {
            dirty: true,
            urgent: true,
            last: now.checked_sub(NET_FRAME).unwrap_or(now),
        }
    }

    fn next(&self) -> tokio::time::Instant {
        self.last + if self.urgent { FRAME } else { NET_FRAME }
    }

    fn due(&self, now: tokio::time::Instant) -> bool {
        self.dirty && now >= self.next()
    }

    fn drawn(&mut self, now: tokio::time::Instant) {
        self.dirty = false;
        self.urgent = false;
        self.last = now;
    }

    /// Ends when the next frame is due (never, while nothing changed).
    fn wait(&self) -> impl std::future::Future<Output = ()> + use<> {
        let (dirty, next) = (self.dirty, self.next());
        async move {
            if dirty {
                tokio::time::sleep_until(next).await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut net: NetHandle,
    mut model: Model,
    state: Option<crate::state::FollowState>,
) -> anyhow::Result<()> {
    let mut keys = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let size = terminal.size()?;
    model.size = (size.width, size.height);
    let mut pace = Pace::new();
    let mut net_open = true;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let test_panic = std::env::var_os(TEST_PANIC_ENV).is_some();

    loop {
        let now = tokio::time::Instant::now();
        if pace.due(now) {
            terminal.draw(|f| view::draw(f, &model))?;
            pace.drawn(now);
            assert!(!test_panic, "{TEST_PANIC_ENV} is set: panicking on purpose");
        }
        let frame_due = pace.wait();
        let mut msgs = Vec::new();
        tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(ev)) => {
                    msgs.extend(to_msg(ev));
                    pace.urgent = true;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            ev = net.events.recv(), if net_open => if let Some(ev) = ev {
                // The time they came, for the live figures (latency, rate).
                msgs.extend([Msg::Tick(chrono::Utc::now()), Msg::Net(ev)]);
                while msgs.len() < NET_BATCH {
                    match net.events.try_recv() {
                        Ok(ev) => msgs.push(Msg::Net(ev)),
                        Err(_) => break,
                    }
                }
            } else {
                net_open = false;
                msgs.push(Msg::NetEnded);
            },
            () = frame_due => {}
            _ = clock.tick() => msgs.push(Msg::Tick(chrono::Utc::now())),
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
        }
        if !msgs.is_empty() {
            pace.dirty = true;
        }
        let mut queue: std::collections::VecDeque<Msg> = msgs.into();
        while let Some(msg) = queue.pop_front() {
            for effect in update(&mut model, msg) {
                match effect {
                    Effect::Copy(text) => copy_to_clipboard(&text),
                    Effect::Edit { node, id, xml } => {
                        // The editor owns the terminal meanwhile: no key reader may run.
                        drop(keys);
                        let edit = run_editor(terminal, &xml).await;
                        keys = EventStream::new();
                        let (result, kept) = match edit {
                            Ok(Some((text, path))) => (Ok(Some(text)), Some(path)),
                            Ok(None) => (Ok(None), None),
                            Err(e) => (Err(e), None),
                        };
                        queue.push_back(Msg::Edited {
                            node,
                            id,
                            result,
                            kept,
                        });
                    }
                    Effect::Export {
                        path,
                        format,
                        label,
                        items,
                    } => queue.push_back(export::run(path, format, label, &items)),
                    Effect::RemoveFile(path) => {
                        let _ = std::fs::remove_file(path);
                    }
                    Effect::Quit => {
                        // Say so: unsubscribing can take a moment on a slow link.
                        let _ = terminal.draw(|f| view::draw(f, &model));
                        shutdown(net).await;
                        return outcome(&model);
                    }
                    Effect::Remember { node, follow } => {
                        remember(state.as_ref(), &mut model, &node, follow);
                    }
                    Effect::Net(cmd) => send(&net, &mut model, cmd),
                }
            }
        }
    }
    shutdown(net).await;
    outcome(&model)
}

/// Keep (or forget) a followed node for the next start; a failure is said.
fn remember(
    state: Option<&crate::state::FollowState>,
    model: &mut Model,
    node: &str,
    follow: bool,
) {
    if let Some(state) = state
        && let Err(e) = state.record(node, follow)
    {
        model.outcome(
            Level::Error,
            format!("the next start will not know this: {e:#}"),
        );
    }
}

/// Hand a command to the network core without waiting; a full queue is said.
fn send(net: &NetHandle, model: &mut Model, cmd: Command) {
    match net.commands.try_send(cmd) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            model.outcome(Level::Error, "busy: the network queue is full, try again");
        }
        Err(TrySendError::Closed(_)) => model.outcome(Level::Error, "the connection has ended"),
    }
}

/// Put text on the terminal's clipboard with OSC 52 (terminals that do not allow it ignore
/// it). The text is an item id: no control characters reach the terminal.
fn copy_to_clipboard(text: &str) {
    use base64::Engine as _;
    use std::io::Write as _;
    let clean = crate::sanitize::display(text);
    let encoded = base64::engine::general_purpose::STANDARD.encode(clean.as_bytes());
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b]52;c;{encoded}\x07");
    let _ = out.flush();
}

/// Run `$VISUAL` or `$EDITOR` (else `vi`) on `xml` in a private temporary file, with the
/// terminal given back to it meanwhile. `Ok(None)`: not changed. A changed text comes with
/// its file, kept until the service has the item (so a refusal loses nothing). A text that
/// is not one XML element is refused here and its file kept too.
/// The editor runs as a child awaited on the runtime's one thread: the network core goes on
/// meanwhile (keepalives, items), while no key reader or frame touches the terminal.
async fn run_editor(
    terminal: &mut ratatui::DefaultTerminal,
    xml: &str,
) -> Result<Option<(String, std::path::PathBuf)>, String> {
    use std::io::Write as _;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    let words = shlex::split(&editor)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| format!("cannot run the editor {editor:?}: not a command line"))?;
    let mut file = tempfile::Builder::new()
        .prefix("pubsub-tui-item-")
        .suffix(".xml")
        .tempfile()
        .map_err(|e| format!("cannot make a file to edit: {e}"))?;
    file.write_all(xml.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| format!("cannot write the file to edit: {e}"))?;
    restore_terminal();
    let status = tokio::process::Command::new(&words[0])
        .args(&words[1..])
        .arg(file.path())
        .status()
        .await;
    let back = crossterm::terminal::enable_raw_mode().and_then(|()| {
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )
    });
    // Clear and redraw everything next (`clear` would ask the terminal where its cursor is,
    // with no key reader running to take the answer).
    if let Ok(size) = terminal.size() {
        let _ = terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height));
    }
    back.map_err(|e| format!("cannot take the terminal back: {e}"))?;
    match status {
        Err(e) => return Err(format!("cannot run the editor {editor:?}: {e}")),
        Ok(s) if !s.success() => {
            return Err(format!(
                "the editor {editor:?} ended with {s}: nothing published"
            ));
        }
        Ok(_) => {}
    }
    let text = std::fs::read_to_string(file.path())
        .map_err(|e| format!("cannot read the edited file: {e}"))?;
    if text == xml {
        return Ok(None);
    }
    if let Err(why) = crate::xmpp::proto::parse_payload(&text) {
        let kept = file.keep().map_or_else(
            |_| "(could not be kept)".to_owned(),
            |(_, path)| path.display().to_string(),
        );
        return Err(format!("not published: {why}; your edit is kept in {kept}"));
    }
    let path = file
        .keep()
        .map(|(_, path)| path)
        .map_err(|e| format!("cannot keep the edited file: {e}"))?;
    Ok(Some((text, path)))
}

/// How the run ended for the shell: a connection that failed for good (bad credentials, TLS)
/// is an error, printed again once the terminal is restored so it is not lost with the screen.
fn outcome(model: &Model) -> anyhow::Result<()> {
    match &model.conn {
        crate::xmpp::ConnState::Failed { error } => {
            Err(anyhow::anyhow!("connection failed: {error}"))
        }
        _ => Ok(()),
    }
}

/// Ask the network core to unsubscribe and close the stream cleanly, without waiting long.
async fn shutdown(net: NetHandle) {
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(crate::headless::CLOSE_WAIT, net.task).await;
}

#[cfg(test)]
mod tests {
    use super::{FRAME, NET_FRAME, Pace};
    use tokio::time::{Duration, Instant};

    #[test]
    fn frames_follow_keys_at_once_and_the_network_at_its_pace() {
        let mut pace = Pace::new();
        let t0 = Instant::now();
        assert!(pace.due(t0), "the first frame is drawn at once");
        pace.drawn(t0);
        assert!(!pace.due(t0 + NET_FRAME * 5), "nothing changed: no frame");
        // Network events only: the next frame waits for NET_FRAME.
        pace.dirty = true;
        assert!(!pace.due(t0 + FRAME));
        assert!(!pace.due(t0 + NET_FRAME - Duration::from_millis(1)));
        assert!(pace.due(t0 + NET_FRAME));
        // A key: at the FRAME pace (control: the same change without the key waited).
        pace.urgent = true;
        assert!(pace.due(t0 + FRAME));
        pace.drawn(t0 + FRAME);
        assert!(!pace.urgent, "a frame ends the hurry");
        // A lone event after a quiet spell is drawn at once.
        pace.dirty = true;
        assert!(pace.due(t0 + FRAME + NET_FRAME));
    }
}

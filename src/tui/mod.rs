//! The terminal front end.
//!
//! - [`model`]: what is shown; [`update`]: how messages change it (pure);
//! - [`view`]: how it is drawn (one file per pane); [`keymap`]: the key table;
//! - this file: the thin shell that owns the terminal and moves messages.
//!
//! The loop redraws only when something changed, at most [`FRAME`] apart, and drains network
//! events in batches so a flood never starves the keyboard. It never awaits the network:
//! commands go out with `try_send`, and a full queue is shown as "busy".

pub mod keymap;
pub mod model;
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

use self::model::Model;
use self::update::{Effect, Msg, update};
use crate::xmpp::{Command, NetHandle};

/// Minimum time between two frames (about 60 frames/s at most).
pub const FRAME: Duration = Duration::from_millis(16);
/// Network events handled before the loop looks at the keyboard again.
const NET_BATCH: usize = 512;

/// Run the TUI until the user quits. Restores the terminal on every exit path (a panic too,
/// through ratatui's hook).
pub async fn run(net: NetHandle, model: Model) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let setup = crossterm::execute!(std::io::stdout(), EnableMouseCapture, EnableBracketedPaste);
    let result = match setup {
        Ok(()) => event_loop(&mut terminal, net, model).await,
        Err(e) => Err(e.into()),
    };
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste
    );
    ratatui::restore();
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

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut net: NetHandle,
    mut model: Model,
) -> anyhow::Result<()> {
    let mut keys = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let size = terminal.size()?;
    model.size = (size.width, size.height);
    let mut dirty = true;
    let mut next_frame = tokio::time::Instant::now();
    let mut net_open = true;

    loop {
        let now = tokio::time::Instant::now();
        if dirty && now >= next_frame {
            terminal.draw(|f| view::draw(f, &model))?;
            dirty = false;
            next_frame = now + FRAME;
        }
        let frame_due = async {
            if dirty {
                tokio::time::sleep_until(next_frame).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let mut msgs = Vec::new();
        tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(ev)) => msgs.extend(to_msg(ev)),
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            ev = net.events.recv(), if net_open => if let Some(ev) = ev {
                msgs.push(Msg::Net(ev));
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
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
        }
        if !msgs.is_empty() {
            dirty = true;
        }
        for msg in msgs {
            for effect in update(&mut model, msg) {
                match effect {
                    Effect::Quit => {
                        shutdown(net).await;
                        return outcome(&model);
                    }
                    Effect::Net(cmd) => match net.commands.try_send(cmd) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            model.last_error =
                                Some("busy: the network queue is full, try again".into());
                        }
                        Err(TrySendError::Closed(_)) => {
                            model.last_error = Some("the connection has ended".into());
                        }
                    },
                }
            }
        }
    }
    shutdown(net).await;
    outcome(&model)
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

/// Ask the network core to close the stream cleanly, without waiting long.
async fn shutdown(net: NetHandle) {
    let _ = net.commands.try_send(Command::Shutdown);
    let _ = tokio::time::timeout(Duration::from_secs(2), net.task).await;
}

//! berthd's event bus: what `docker events` shows. The engine publishes one
//! [`EventMessage`] per lifecycle step (container create/start/die/exec_*/…,
//! image load/import/tag/untag/delete, network and volume changes);
//! subscribers get the live stream, and a bounded history serves `--since`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libswarm::models::{EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum};
use libswarm::util::now_nanos;
use libswarm::{event_matches as matches, BoxStream, EventsOptions, Result};
use tokio::sync::broadcast;

/// Events kept for `docker events --since`.
const HISTORY: usize = 4096;

/// The kind of object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A container (`create`, `start`, `die`, `stop`, `kill`, `destroy`,
    /// `exec_create`, `exec_start`, `exec_die`).
    Container,
    /// An image (`load`, `import`, `tag`, `untag`, `delete`).
    Image,
    /// A network (`create`, `connect`, `disconnect`, `destroy`).
    Network,
    /// A volume (`create`, `mount`, `unmount`, `destroy`).
    Volume,
}

impl Kind {
    fn api(self) -> EventMessageTypeEnum {
        match self {
            Kind::Container => EventMessageTypeEnum::CONTAINER,
            Kind::Image => EventMessageTypeEnum::IMAGE,
            Kind::Network => EventMessageTypeEnum::NETWORK,
            Kind::Volume => EventMessageTypeEnum::VOLUME,
        }
    }
}

/// The bus: a broadcast channel for live subscribers and a ring of recent
/// events for replays.
pub struct Events {
    tx: broadcast::Sender<EventMessage>,
    history: Mutex<VecDeque<EventMessage>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
            history: Mutex::new(VecDeque::new()),
        }
    }
}

/// Builds an event of `kind`/`action` about `id` with `attributes`
/// (Docker puts `name`, `image`, `exitCode`, `signal`, labels … there).
pub fn message(kind: Kind, action: &str, id: &str, attributes: &[(&str, &str)]) -> EventMessage {
    let now = now_nanos();
    let attributes: HashMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EventMessage {
        typ: Some(kind.api()),
        action: Some(action.to_string()),
        actor: Some(EventActor {
            id: Some(id.to_string()),
            attributes: Some(attributes),
        }),
        scope: Some(EventMessageScopeEnum::LOCAL),
        time: Some(now / 1_000_000_000),
        time_nano: Some(now),
    }
}

impl Events {
    /// A new bus.
    pub fn new() -> Arc<Events> {
        Arc::default()
    }

    /// Publishes an event (see [`message`]).
    pub fn publish(&self, kind: Kind, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let e = message(kind, action, id, attributes);
        tracing::debug!(?kind, action, id, "event");
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            h.push_back(e.clone());
            if h.len() > HISTORY {
                h.pop_front();
            }
        }
        // No subscriber is fine.
        let _ = self.tx.send(e);
    }

    /// `docker events`: the history from `since`, then live events until
    /// `until` (a past `until` ends after the replay), all through the
    /// filters.
    pub fn stream(&self, options: EventsOptions) -> BoxStream<Result<EventMessage>> {
        let rx = self.tx.subscribe();
        let since = options.since.map(|s| s.saturating_mul(1_000_000_000));
        let until = options.until.map(|u| u.saturating_mul(1_000_000_000));
        let filters = Arc::new(options.filters);
        let replay: Vec<Result<EventMessage>> = match since {
            None => Vec::new(),
            Some(since) => {
                let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
                h.iter()
                    .filter(|e| {
                        let t = e.time_nano.unwrap_or(0);
                        t >= since && until.is_none_or(|u| t <= u) && matches(&filters, e)
                    })
                    .cloned()
                    .map(Ok)
                    .collect()
            }
        };
        let replay = futures::stream::iter(replay);
        let now = now_nanos();
        if until.is_some_and(|u| u <= now) {
            return replay.boxed();
        }
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "events subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |e| futures::future::ready(matches(&filters, e)))
        .map(Ok);
        match until {
            Some(u) => {
                let left = Duration::from_nanos(u.saturating_sub(now).max(0) as u64);
                replay
                    .chain(live.take_until(tokio::time::sleep(left)))
                    .boxed()
            }
            None => replay.chain(live).boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libswarm::Filters;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let mut f = Filters::new();
        for (k, v) in pairs {
            f.entry(k.to_string()).or_default().push(v.to_string());
        }
        f
    }

    #[test]
    fn filters_select_by_type_action_and_container() {
        let e = message(
            Kind::Container,
            "die",
            "abcdef0123",
            &[("name", "web"), ("image", "busybox"), ("exitCode", "3")],
        );
        assert!(matches(&Filters::new(), &e));
        assert!(matches(&filters(&[("type", "container")]), &e));
        assert!(!matches(&filters(&[("type", "image")]), &e));
        assert!(matches(
            &filters(&[("event", "die"), ("event", "stop")]),
            &e
        ));
        assert!(!matches(&filters(&[("event", "start")]), &e));
        assert!(matches(&filters(&[("container", "web")]), &e));
        assert!(matches(&filters(&[("container", "abc")]), &e));
        assert!(!matches(&filters(&[("container", "db")]), &e));
        assert!(matches(&filters(&[("image", "busybox")]), &e));
        let exec = message(Kind::Container, "exec_start: sh -c true", "abc", &[]);
        assert!(matches(&filters(&[("event", "exec_start")]), &exec));
        let vol = message(Kind::Volume, "create", "data", &[("driver", "local")]);
        assert!(matches(&filters(&[("volume", "data")]), &vol));
        assert!(!matches(&filters(&[("container", "data")]), &vol));
    }

    #[tokio::test]
    async fn since_replays_and_until_ends_the_stream() {
        let bus = Events::new();
        bus.publish(Kind::Volume, "create", "a", &[]);
        bus.publish(Kind::Container, "create", "c1", &[("name", "x")]);
        let now = now_nanos() / 1_000_000_000;
        // Replay from `since`, then live events until `until` (the next
        // second), then the end.
        let bounded = bus.stream(EventsOptions {
            since: Some(now - 5),
            until: Some(now + 1),
            filters: filters(&[("type", "volume")]),
        });
        bus.publish(Kind::Volume, "destroy", "a", &[]);
        let got: Vec<_> = bounded.map(|e| e.unwrap()).collect().await;
        let actions: Vec<_> = got.iter().map(|e| e.action.clone().unwrap()).collect();
        assert_eq!(actions, ["create", "destroy"]);
        // A past `until`: the replay only.
        let past: Vec<_> = bus
            .stream(EventsOptions {
                since: Some(now - 5),
                until: Some(now - 1),
                filters: Filters::new(),
            })
            .collect()
            .await;
        assert!(past.is_empty());
        let mut live = bus.stream(EventsOptions::default());
        bus.publish(Kind::Network, "create", "n1", &[]);
        let e = live.next().await.unwrap().unwrap();
        assert_eq!(e.typ, Some(EventMessageTypeEnum::NETWORK));
    }
}

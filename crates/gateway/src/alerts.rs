//! The sink the gateway raises alerts into: `threshold` alerts from settled calls and `blocked`
//! alerts from refused ones. What becomes of them — storing, webhooks, retries — is the
//! business of whoever holds the other end (the server's dispatcher), not the gateway's.

use goodhart_core::budgets::Alert;
use tokio::sync::mpsc;

/// Where alerts are raised (cheap to clone). Unbounded, as the gateway's alerter was: raising
/// happens on the request path and must never wait, and alerts are few (each event is raised
/// once per window, and repeats are dropped by id on the other end).
#[derive(Debug, Clone)]
pub struct AlertSink {
    sender: mpsc::UnboundedSender<Alert>,
}

impl AlertSink {
    /// A sink and the queue its alerts arrive on.
    pub fn channel() -> (AlertSink, mpsc::UnboundedReceiver<Alert>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (AlertSink { sender }, receiver)
    }

    /// A sink that drops what it is given (for measuring the record path alone).
    pub fn disconnected() -> AlertSink {
        AlertSink::channel().0
    }

    /// Queues an alert (never blocks the caller); once the queue's receiver has closed or gone,
    /// the alert is dropped.
    pub fn raise(&self, alert: Alert) {
        let _ = self.sender.send(alert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::Micros;
    use goodhart_core::budgets::AlertKind;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::Threshold,
            budget_id: "b".into(),
            scope: "team t".into(),
            message: "team t reached 80 %".into(),
            created_at: Micros(0),
        }
    }

    #[test]
    fn raised_alerts_arrive_in_order_from_every_clone() {
        let (sink, mut queue) = AlertSink::channel();
        sink.raise(alert("a"));
        sink.clone().raise(alert("b"));
        assert_eq!(queue.try_recv().unwrap().id, "a");
        assert_eq!(queue.try_recv().unwrap().id, "b");
        assert!(queue.try_recv().is_err());
    }

    #[test]
    fn a_disconnected_or_closed_sink_drops_alerts_without_failing() {
        AlertSink::disconnected().raise(alert("a"));
        let (sink, mut queue) = AlertSink::channel();
        queue.close();
        sink.raise(alert("b"));
        assert!(queue.try_recv().is_err());
    }
}

//! The error messages docs/workqueue.md quotes, checked word for word.

use wq::{DataWork, WaitError};

/// The hard-IRQ and self-wait messages read exactly as documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_as_documented() {
    let item = DataWork::new("waits-for-itself", (), |_| {});
    let guard = irq_sim::context::enter_hardirq(42, "nic-rx");
    let in_top_half = wq::blocking::flush_work(&item).unwrap_err();
    drop(guard);
    assert_eq!(
        in_top_half.to_string(),
        "sleeping function called from invalid context: flush_work called in hard-IRQ \
         context by handler \"nic-rx\" of irq 42; defer the waiting to a work item or an \
         IRQ thread"
    );

    // A work function that really flushes itself.
    let (sender, receiver) = std::sync::mpsc::channel();
    let sender = std::sync::Mutex::new(sender);
    let waiter = DataWork::new("waits-for-itself", (), move |item| {
        let result = wq::blocking::flush_work(item);
        sender.lock().unwrap().send(result).unwrap();
    });
    wq::schedule_work(&waiter).unwrap();
    let self_wait = receiver
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the work function ran")
        .unwrap_err();
    assert!(matches!(self_wait, WaitError::SelfWait { .. }));
    assert_eq!(
        self_wait.to_string(),
        "flush_work called by work item \"waits-for-itself\" on itself would wait forever; \
         return from the work function instead, or re-queue the item"
    );
}

/// The error of a waiting API called in a top half shows the message of
/// its context error, so `source()` does not return that error again.
#[test]
fn invalid_context_not_repeated_as_source() {
    let item = DataWork::new("in-top-half", (), |_| {});
    let guard = irq_sim::context::enter_hardirq(42, "nic-rx");
    let error = wq::blocking::flush_work(&item).unwrap_err();
    drop(guard);

    assert!(matches!(error, WaitError::InvalidContext(_)), "{error:?}");
    let message = error.to_string();
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        source.as_deref() != Some(message.as_str()),
        "the source repeats the message {message:?}"
    );
}

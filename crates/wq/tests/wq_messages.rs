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

/// A writer into a buffer that the test reads back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A destroy that waits a second or more for a delayed item armed before
/// it logs a warning that names the cure. Linux would return at once, and
/// without the warning a driver's remove that forgot its cancel would hang
/// without a word.
#[test]
fn destroy_warns_of_long_armed_delay() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dwork = {
        let runs = runs.clone();
        wq::DelayedWork::from_fn("debounce", move || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    };
    // A short delay too, which the warning leaves out.
    let blink = {
        let runs = runs.clone();
        wq::DelayedWork::from_fn("blink", move || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let queue = wq::alloc_workqueue("buttons", wq::WqFlags::default(), 1);
    wq::queue_delayed_work(&queue, &dwork, std::time::Duration::from_secs(3600)).unwrap();
    wq::queue_delayed_work(&queue, &blink, std::time::Duration::from_millis(20)).unwrap();

    // The destroy would wait the hour: once it has warned, a cancel ends
    // the wait, as a late cancel_delayed_work in a driver's remove would.
    let canceller = {
        let (captured, dwork) = (captured.clone(), dwork.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !String::from_utf8_lossy(&captured.0.lock().unwrap()).contains("may wait up to") {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no warning within 30 s"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(wq::cancel_delayed_work(&dwork));
        })
    };
    wq::blocking::destroy_workqueue(&queue).unwrap();
    canceller.join().unwrap();

    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("destroy_workqueue may wait up to 3") && log.contains("1 delayed item(s)"),
        "{log}"
    );
    // Whole milliseconds, as the wait_ms field, not a Debug duration in
    // nanoseconds.
    assert!(log.contains(" ms for 1 delayed item(s)"), "{log}");
    assert!(log.contains("cancel_delayed_work_sync"), "{log}");
}

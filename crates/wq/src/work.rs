//! Work items: the three ways to make one, and the references queues keep.
//!
//! | kernel | irqlab |
//! |---|---|
//! | `static DECLARE_WORK(w, fn)` | `static W: Work = Work::new("w", f);` |
//! | `kmalloc` + `INIT_WORK(w, fn)` | `let w: Arc<Work> = Work::from_fn("w", closure);` |
//! | struct embedding a `work_struct`, `container_of` in `fn` | `DataWork::new("w", data, \|item\| item.field)` |
//! | `DECLARE_DELAYED_WORK`, `INIT_DELAYED_WORK` | [`DelayedWork::new`], [`DelayedWork::from_fn`] |
//!
//! A queue keeps a reference to every item it holds, so a dynamically
//! created item lives until its last run has finished, and is freed when
//! the last `Arc` goes: it can neither leak nor be used after free. A
//! `&'static` item needs no reference count.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use crate::core::WorkCore;
use crate::sync::const_unless_loom;

/// The future an async work function returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The outcome of calling a work item's function.
pub(crate) enum Call {
    /// A synchronous function ran to completion.
    Done,
    /// An async function returned this future, to be driven by the worker.
    Future(BoxFuture),
}

/// A work item as the queues see it.
pub(crate) trait Runnable: Send + Sync + 'static {
    fn core(&self) -> &WorkCore;

    /// Returns true when the function is async.
    fn is_async(&self) -> bool;

    /// Runs a synchronous function, or creates an async function's future.
    fn call(&self) -> Call;
}

/// A counted or static reference to a work item, kept by the queue that
/// holds the item.
#[derive(Clone)]
pub struct ItemRef(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static dyn Runnable),
    Shared(Arc<dyn Runnable>),
}

impl ItemRef {
    pub(crate) fn core(&self) -> &WorkCore {
        self.runnable().core()
    }

    pub(crate) fn runnable(&self) -> &dyn Runnable {
        match &self.0 {
            Repr::Static(item) => *item,
            Repr::Shared(item) => &**item,
        }
    }

    #[cfg(all(test, wq_loom))]
    pub(crate) fn from_arc(item: Arc<dyn Runnable>) -> Self {
        Self(Repr::Shared(item))
    }
}

impl fmt::Debug for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ItemRef").field(&self.core().name()).finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A reference to a work item that a queue may keep: a `&'static` item or an
/// `&Arc` of one.
///
/// A plain `&Work` borrowed from a local is not accepted, because the queue
/// could outlive the borrow. Rejecting it at compile time rules out the
/// kernel's "work item freed while queued" bug.
pub trait WorkRef: sealed::Sealed {
    #[doc(hidden)]
    fn item_ref(&self) -> ItemRef;

    #[doc(hidden)]
    fn work_core(&self) -> &WorkCore;
}

/// A [`WorkRef`] to a delayed work item, accepted by the delayed APIs.
pub trait DelayedWorkRef: WorkRef {}

macro_rules! impl_work_ref {
    ($ty:ty) => {
        impl sealed::Sealed for &'static $ty {}

        impl WorkRef for &'static $ty {
            fn item_ref(&self) -> ItemRef {
                ItemRef(Repr::Static(*self))
            }

            fn work_core(&self) -> &WorkCore {
                self.core()
            }
        }

        impl sealed::Sealed for &Arc<$ty> {}

        impl WorkRef for &Arc<$ty> {
            fn item_ref(&self) -> ItemRef {
                // Cloning an `Arc` and unsizing it does not allocate.
                ItemRef(Repr::Shared(Arc::clone(*self) as Arc<dyn Runnable>))
            }

            fn work_core(&self) -> &WorkCore {
                self.core()
            }
        }
    };
}

impl_work_ref!(Work);
impl_work_ref!(DelayedWork);

impl DelayedWorkRef for &'static DelayedWork {}
impl DelayedWorkRef for &Arc<DelayedWork> {}

impl<T: Send + Sync + 'static> sealed::Sealed for &Arc<DataWork<T>> {}

impl<T: Send + Sync + 'static> WorkRef for &Arc<DataWork<T>> {
    fn item_ref(&self) -> ItemRef {
        ItemRef(Repr::Shared(Arc::clone(*self) as Arc<dyn Runnable>))
    }

    fn work_core(&self) -> &WorkCore {
        &self.core
    }
}

enum WorkFn {
    Sync(fn()),
    Async(fn() -> BoxFuture),
    SyncClosure(Box<dyn Fn() + Send + Sync>),
    AsyncClosure(Box<dyn Fn() -> BoxFuture + Send + Sync>),
}

impl WorkFn {
    fn is_async(&self) -> bool {
        matches!(self, WorkFn::Async(_) | WorkFn::AsyncClosure(_))
    }

    fn call(&self) -> Call {
        match self {
            WorkFn::Sync(f) => {
                f();
                Call::Done
            }
            WorkFn::SyncClosure(f) => {
                f();
                Call::Done
            }
            WorkFn::Async(f) => Call::Future(f()),
            WorkFn::AsyncClosure(f) => Call::Future(f()),
        }
    }
}

/// A work item: a function to run later in task context, the
/// `work_struct` of irqlab.
///
/// # Examples
///
/// A static item, as `DECLARE_WORK` makes one:
///
/// ```
/// use wq::Work;
///
/// fn my_function() {
///     println!("call function from queue");
/// }
///
/// static MY_WORK: Work = Work::new("my_work", my_function);
///
/// assert!(wq::schedule_work(&MY_WORK).unwrap());
/// wq::blocking::flush_work(&MY_WORK).unwrap();
/// ```
pub struct Work {
    core: WorkCore,
    func: WorkFn,
}

impl Work {
    const_unless_loom! {
        /// Makes a work item from a function, in a `static` if need be
        /// (`DECLARE_WORK`).
        pub fn new(name: &'static str, func: fn()) -> Self {
            Self {
                core: WorkCore::new(Cow::Borrowed(name)),
                func: WorkFn::Sync(func),
            }
        }
    }

    const_unless_loom! {
        /// Makes a work item from an async function, in a `static` if need
        /// be.
        pub fn new_async(name: &'static str, func: fn() -> BoxFuture) -> Self {
            Self {
                core: WorkCore::new(Cow::Borrowed(name)),
                func: WorkFn::Async(func),
            }
        }
    }

    /// Allocates a work item that runs `func` (`INIT_WORK` on allocated
    /// memory). The item is freed when the last `Arc` is dropped, which a
    /// queue holding it delays until its run has finished.
    pub fn from_fn(
        name: impl Into<Cow<'static, str>>,
        func: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            core: WorkCore::new(name.into()),
            func: WorkFn::SyncClosure(Box::new(func)),
        })
    }

    /// Allocates a work item that runs the future `func` returns.
    pub fn from_async_fn<F, Fut>(name: impl Into<Cow<'static, str>>, func: F) -> Arc<Self>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Arc::new(Self {
            core: WorkCore::new(name.into()),
            func: WorkFn::AsyncClosure(Box::new(move || Box::pin(func()))),
        })
    }

    /// Returns the item's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Returns true while the item is pending (`work_pending`).
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn is_pending(&self) -> bool {
        self.core.is_pending()
    }

    /// Returns true while [`disable_work`](crate::disable_work) or its
    /// relatives keep the item from being queued. Linux keeps the disable
    /// count in the work's data bits and exports no such query.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn is_disabled(&self) -> bool {
        self.core.disable_depth() > 0
    }

    pub(crate) fn core(&self) -> &WorkCore {
        &self.core
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl Runnable for Work {
    fn core(&self) -> &WorkCore {
        &self.core
    }

    fn is_async(&self) -> bool {
        self.func.is_async()
    }

    fn call(&self) -> Call {
        self.func.call()
    }
}

/// A work item that can wait for a delay before it is queued
/// (`struct delayed_work`).
///
/// The delay runs on tokio's timer, whose granularity is 1 ms, like the
/// kernel's jiffies at `HZ=1000`: a delayed item never runs before its delay
/// and is queued at most about one millisecond after it.
pub struct DelayedWork {
    work: Work,
}

impl DelayedWork {
    const_unless_loom! {
        /// Makes a delayed work item from a function (`DECLARE_DELAYED_WORK`).
        pub fn new(name: &'static str, func: fn()) -> Self {
            Self { work: Work::new(name, func) }
        }
    }

    const_unless_loom! {
        /// Makes a delayed work item from an async function.
        pub fn new_async(name: &'static str, func: fn() -> BoxFuture) -> Self {
            Self { work: Work::new_async(name, func) }
        }
    }

    /// Allocates a delayed work item that runs `func` (`INIT_DELAYED_WORK`).
    pub fn from_fn(
        name: impl Into<Cow<'static, str>>,
        func: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            work: Work {
                core: WorkCore::new(name.into()),
                func: WorkFn::SyncClosure(Box::new(func)),
            },
        })
    }

    /// Allocates a delayed work item whose function gets a handle to the
    /// item itself, for an item that re-arms itself, such as a poll. In C
    /// the function finds its item with
    /// `container_of(to_delayed_work(work), ...)`; here `make` receives a
    /// weak reference to the item and returns the function, so that the
    /// item does not keep itself alive.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use wq::DelayedWork;
    ///
    /// let poll = DelayedWork::from_fn_cyclic("poll", |me| {
    ///     let me = me.clone();
    ///     move || {
    ///         // ... read the device ...
    ///         if let Some(me) = me.upgrade() {
    ///             // Re-arm. A cancel disables the item first, so this
    ///             // returns false instead of escaping it.
    ///             let _ = wq::schedule_delayed_work(&me, Duration::from_millis(5));
    ///         }
    ///     }
    /// });
    /// wq::schedule_delayed_work(&poll, Duration::from_millis(5)).unwrap();
    /// wq::cancel_delayed_work_sync(&poll).await.unwrap();
    /// # }
    /// ```
    pub fn from_fn_cyclic<F>(
        name: impl Into<Cow<'static, str>>,
        make: impl FnOnce(&Weak<DelayedWork>) -> F,
    ) -> Arc<Self>
    where
        F: Fn() + Send + Sync + 'static,
    {
        let name = name.into();
        Arc::new_cyclic(|me| Self {
            work: Work {
                core: WorkCore::new(name),
                func: WorkFn::SyncClosure(Box::new(make(me))),
            },
        })
    }

    /// Allocates a delayed work item that runs the future `func` returns.
    pub fn from_async_fn<F, Fut>(name: impl Into<Cow<'static, str>>, func: F) -> Arc<Self>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Arc::new(Self {
            work: Work {
                core: WorkCore::new(name.into()),
                func: WorkFn::AsyncClosure(Box::new(move || Box::pin(func()))),
            },
        })
    }

    /// Returns the item's name.
    pub fn name(&self) -> &str {
        self.work.name()
    }

    /// Returns true while the item is pending, on its timer or queued.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn is_pending(&self) -> bool {
        self.work.is_pending()
    }

    pub(crate) fn core(&self) -> &WorkCore {
        &self.work.core
    }
}

impl fmt::Debug for DelayedWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.work.core.fmt(f)
    }
}

impl Runnable for DelayedWork {
    fn core(&self) -> &WorkCore {
        &self.work.core
    }

    fn is_async(&self) -> bool {
        self.work.func.is_async()
    }

    fn call(&self) -> Call {
        self.work.func.call()
    }
}

/// The synchronous function of a [`DataWork`].
type DataSyncFn<T> = dyn Fn(&Arc<DataWork<T>>) + Send + Sync;

/// The async function of a [`DataWork`].
type DataAsyncFn<T> = dyn Fn(Arc<DataWork<T>>) -> BoxFuture + Send + Sync;

enum DataFn<T> {
    Sync(Box<DataSyncFn<T>>),
    Async(Box<DataAsyncFn<T>>),
}

/// A work item that carries data, which its function reaches through the
/// item: the safe form of a C struct that embeds a `work_struct` and is
/// recovered with `container_of`.
///
/// The function receives the item itself, so it can read the data (through
/// `Deref`) and re-queue the item. The item and its data are freed when the
/// last `Arc` goes, after the queue has dropped its reference at the end of
/// the run.
///
/// # Examples
///
/// ```
/// use wq::DataWork;
///
/// struct QueueData {
///     data: i32,
/// }
///
/// let item = DataWork::new("with_data", QueueData { data: 99 }, |item| {
///     println!("function param: data={}", item.data);
/// });
/// assert!(wq::schedule_work(&item).unwrap());
/// wq::blocking::flush_work(&item).unwrap();
/// ```
pub struct DataWork<T> {
    core: WorkCore,
    data: T,
    func: DataFn<T>,
    this: Weak<DataWork<T>>,
}

impl<T: Send + Sync + 'static> DataWork<T> {
    /// Allocates an item carrying `data` whose function is `func`.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        data: T,
        func: impl Fn(&Arc<DataWork<T>>) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let name = name.into();
        Arc::new_cyclic(|this| Self {
            core: WorkCore::new(name),
            data,
            func: DataFn::Sync(Box::new(func)),
            this: this.clone(),
        })
    }

    /// Allocates an item carrying `data` whose async function is `func`.
    pub fn new_async<F, Fut>(name: impl Into<Cow<'static, str>>, data: T, func: F) -> Arc<Self>
    where
        F: Fn(Arc<DataWork<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        Arc::new_cyclic(|this| Self {
            core: WorkCore::new(name),
            data,
            func: DataFn::Async(Box::new(move |item| Box::pin(func(item)))),
            this: this.clone(),
        })
    }

    /// Returns the item's name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// Returns true while the item is pending.
    ///
    /// # Context
    ///
    /// Any; never sleeps.
    pub fn is_pending(&self) -> bool {
        self.core.is_pending()
    }

    /// Returns the data the item carries.
    pub fn data(&self) -> &T {
        &self.data
    }
}

impl<T> Deref for DataWork<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T> fmt::Debug for DataWork<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<T: Send + Sync + 'static> Runnable for DataWork<T> {
    fn core(&self) -> &WorkCore {
        &self.core
    }

    fn is_async(&self) -> bool {
        matches!(self.func, DataFn::Async(_))
    }

    fn call(&self) -> Call {
        // A queue runs the item through an `Arc` it holds, so the item has a
        // strong reference and the upgrade succeeds.
        let this = self
            .this
            .upgrade()
            .expect("a running DataWork is kept alive by its queue");
        match &self.func {
            DataFn::Sync(f) => {
                f(&this);
                Call::Done
            }
            DataFn::Async(f) => Call::Future(f(this)),
        }
    }
}

//! The behaviour suite against the in-process stacks: fake, debug → fake.

use std::sync::Arc;

use libswarm::debug::DebugBackend;
use libswarm::fake::FakeBackend;
use libswarm::Backend;

#[tokio::test]
async fn suite_passes_on_fake() {
    libswarm::suite::run(Arc::new(FakeBackend::new()))
        .await
        .unwrap();
}

#[tokio::test]
async fn suite_passes_on_debug_over_fake() {
    // Debug logging switched on, so the logging path itself runs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("libswarm::debug=debug")
        .with_test_writer()
        .try_init();
    let leaf: Arc<dyn Backend> = Arc::new(FakeBackend::new());
    libswarm::suite::run(Arc::new(DebugBackend::new(leaf)))
        .await
        .unwrap();
}

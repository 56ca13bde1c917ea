//! The prune refusal is the library's decision (`PrunePlan::confirm`), an
//! `ErrorKind::Refused` error with the fix; the CLI only prints it.

use ktx_runtime::prune::{PruneEntry, PruneKind, PrunePlan};
use ktx_runtime::ErrorKind;

fn plan(n: usize) -> PrunePlan {
    PrunePlan {
        remove: (0..n)
            .map(|i| PruneEntry {
                path: format!("/r/0.0.{i}").into(),
                kind: PruneKind::Version,
                bytes: 10,
            })
            .collect(),
        skip: Vec::new(),
    }
}

#[test]
fn removing_needs_confirmation_and_the_refusal_says_how() {
    assert!(
        plan(0).confirm(false).is_ok(),
        "nothing to remove: nothing to confirm"
    );
    assert!(plan(2).confirm(true).is_ok());
    let e = plan(1).confirm(false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert_eq!(
        e.to_string(),
        "refusing to remove 1 directory without --yes\n  hint: Review with `ktx runtime prune --dry-run`, then run `ktx runtime prune --yes`."
    );
    let e = plan(3).confirm(false).unwrap_err();
    assert!(
        e.message.starts_with("refusing to remove 3 directories"),
        "{}",
        e.message
    );
}

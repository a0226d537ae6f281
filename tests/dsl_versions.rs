//! VER-1..4 end to end: an old and a new build of the same classes (new RMCs
//! appended, new dataset fields after a higher revision) in one session.
#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/schema_versions.rs"]
mod schema_versions;

use netz::prelude::*;
use schema_versions::{new, old};

#[test]
fn ids_follow_registration_and_declaration_order() {
    let n = new::registry();
    let o = old::registry();
    assert_eq!(n.class_id::<new::A>(), Some(ClassId(100)));
    assert_eq!(n.class_id::<new::X>(), Some(ClassId(102)));
    assert_eq!(n.class_id::<new::C>(), Some(ClassId(101)));
    assert_eq!(o.class_id::<old::X>(), Some(ClassId(102)));
    assert_eq!(
        n.method_id::<new::X>("get_x"),
        o.method_id::<old::X>("get_x")
    );
    assert_eq!(n.method_id::<new::X>("get_a"), Some(MethodId(1)));
    assert_eq!(new::Data::REVISION, 1);
    assert_eq!(old::Data::REVISION, 0);
    let d = new::Data::default();
    assert_eq!(d.field_revisions(), &[0, 1]);
    assert_eq!(d.valid_revision("a"), Some(1));
}

#[test]
fn explicit_class_id_clash_is_an_error() {
    let mut r = Registry::new();
    r.register::<new::X>().unwrap();
    let err = r.register::<old::X>().unwrap_err();
    assert!(
        matches!(err, netz::RegistryError::ClassIdClash { id: 102, .. }),
        "{err}"
    );
}

#[test]
fn two_builds_interoperate() {
    let (_, seen) = schema_versions::run();
    // The new build reads the old build's dataset as revision 0: `a` is not valid.
    assert_eq!(seen.new_sees_old_revision, 0);
    assert!(!seen.new_sees_old_a_valid);
    assert_eq!(seen.new_sees_old_x, 1.5);
    // The old build ignores the new build's trailing field.
    assert_eq!(seen.old_sees_new_x, 2.5);
    assert_eq!(seen.old_sees_new_revision, 1);
    assert_eq!(seen.new_sees_new_a, 7);
    // A method the old build lacks fails with ErrorRMCDispatchFailed.
    assert_eq!(seen.get_a_on_old, Some(Outcome::ErrorRMCDispatchFailed));
    assert_eq!(seen.get_x_on_old, Some(1.5));
    assert_eq!(seen.get_a_on_new, Some(7));
}

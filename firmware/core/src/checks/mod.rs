//! The core's checks, as plain functions that panic on a failure, so one set runs both as the
//! host's `#[test]`s and in the no_std image that runs them on RV32IMC under QEMU
//! (firmware/qemu). `ALL` lists them by name in the order they run.

pub mod vectors;

/// Lists each check in `ALL` and makes a host `#[test]` of it.
macro_rules! checks {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every check: its name (`module::function`) and the function.
        pub const ALL: &[(&str, fn())] =
            &[$((concat!(stringify!($module), "::", stringify!($name)), $module::$name)),*];

        #[cfg(test)]
        mod tests {
            $(
                #[test]
                fn $name() {
                    super::$module::$name()
                }
            )*
        }
    };
}

checks! {
    vectors::the_vectors_meter_key,
    vectors::signs_every_reading_of_the_vectors_as_they_are,
    vectors::signs_the_vectors_registration,
}

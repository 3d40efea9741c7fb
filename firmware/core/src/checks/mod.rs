//! The core's checks, as plain functions that panic on a failure, so one set runs both as the
//! host's `#[test]`s and in the no_std image that runs them on RV32IMC under QEMU
//! (firmware/qemu). `ALL` lists them by name in the order they run.

pub mod impulse;
pub mod modbus;
pub mod power_cut;
pub mod pzem;
pub mod sdm;
pub mod simulated;
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
    modbus::crc_of_the_eastron_protocol_examples,
    modbus::each_broken_reply_has_its_name,
    sdm::floats_of_kwh_become_wh,
    sdm::reads_import_and_export_in_one_request,
    sdm::a_reset_meter_gives_no_reading,
    sdm::a_nan_register_is_named,
    sdm::a_silent_meter_is_named,
    power_cut::a_power_cut_at_every_write_loses_nothing_and_reuses_nothing,
    power_cut::a_full_backlog_refuses_and_an_acknowledgement_makes_room,
    power_cut::the_device_backlog_holds_seven_days,
    power_cut::a_layout_that_overlaps_is_refused,
    pzem::sends_the_datasheet_read_command,
    pzem::a_module_on_the_grid_line_counts_import,
    pzem::a_reset_energy_counter_gives_no_reading,
    pzem::a_cut_reply_is_a_timeout,
    impulse::bounces_count_once,
    impulse::the_millisecond_clock_may_wrap,
    impulse::wh_are_whole_and_the_total_resumes,
    simulated::integrates_power_exactly,
    vectors::the_vectors_meter_key,
    vectors::signs_every_reading_of_the_vectors_as_they_are,
    vectors::signs_the_vectors_registration,
}

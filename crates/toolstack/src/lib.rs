//! Domains and devices: the xl.cfg parser, the ARM domain builder, device layouts
//! and the hotplug state machine behind `rxl`.

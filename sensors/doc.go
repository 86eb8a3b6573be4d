// Package sensors reads local sensors periodically and hands the readings
// to a sink: the input side of an edged node. It produces readings only;
// storing them is the sink's business.
//
// # Adapters
//
// Config lists adapters of five kinds, each entry polled on its own
// goroutine at its own interval:
//
//   - thermal: Linux thermal zones, /sys/class/thermal/thermal_zone*
//     (the SoC of a Raspberry Pi, ACPI zones of a PC).
//   - hwmon: hardware monitoring chips, /sys/class/hwmon/hwmon*:
//     temperatures, voltages, fans, power, current and humidity.
//   - onewire: DS18B20 thermometers on the 1-Wire bus,
//     /sys/bus/w1/devices/28-*/w1_slave, with their CRC checked.
//   - exec: a command, run without a shell, that prints numbers.
//   - simulated: sine, square, sawtooth or random-walk waveforms with
//     noise, for demonstrations and load tests.
//
// DefaultConfig has none: a node reads no sensors unless told to.
//
// # Sensor names and units
//
// A reading's Sensor is a dot-separated name, the first parts from the
// configuration and the rest from what the adapter found:
//
//	thermal.cpu-thermal           <prefix>.<zone type>
//	thermal.acpitz.1              <prefix>.<zone type>.<zone number>, for types shared by zones
//	hwmon.coretemp.temp1          <prefix>.<chip>.<channel>
//	hwmon.coretemp.package_id_0   <prefix>.<chip>.<channel label>
//	w1.28-0316a2795eff            <prefix>.<1-Wire ID>
//	exec.soil                     exec.<name>, for a single number
//	exec.soil.moisture            exec.<name>.<output name>
//	exec.soil.0                   exec.<name>.<index>, for one number per line
//	sim.demo                      sim.<name>
//	sim.load.17                   sim.<name>.<index>, for count > 1
//
// Names from the kernel are made lower case and runs of characters other
// than letters, digits, '_' and '-' become '_'. The config types' field
// documentation has the details.
//
// Reading.Unit names each value's unit: "C" (°C) for temperatures, and
// "V", "A", "W", "RPM" and "%" (relative humidity) from hwmon, converted
// from the kernel's milli- and micro-units; exec and simulated entries
// name their own.
//
// # Failures
//
// Nothing a sensor does stops the node. A poll that fails in part (one
// zone unreadable, one DS18B20 with a bad CRC) delivers what it could
// read; one that fails in whole backs off, doubling its delay up to 32
// intervals or 5 minutes. NaN and infinite values are dropped. Failures are
// logged with a constant message and key-value attributes ("adapter",
// "failures", "err") at the 1st, 2nd, 4th, 8th… consecutive failure, so a
// sensor that stays broken costs a logarithmic number of log lines, and
// the recovery is logged once. Panics in an adapter or in the sink are
// recovered and logged with their stack; the other adapters never notice.
// Options.Stats counts polls, failures, readings, rejections and panics.
//
// # Concurrency
//
// Run owns every adapter goroutine and returns only once all have stopped.
// The sink is called from all of them concurrently, one call at a time per
// adapter, and may block to push back: that adapter's next poll waits.
//
// # Usage
//
//	cfg := sensors.DefaultConfig() // or the sensors section of the node's file
//	err := sensors.Run(ctx, cfg, func(ctx context.Context, rs []sensors.Reading) error {
//		return store.Append(ctx, rs) // whatever keeps them
//	}, sensors.Options{Logger: log})
//
// Tests point Options.Root at a fake sysfs tree (see testdata/sysfs) and
// inject Options.Now.
package sensors

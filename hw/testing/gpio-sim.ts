/**
 * A real kernel GPIO chip from gpio-sim (Documentation/admin-guide/gpio/gpio-sim.rst): created
 * in configfs with a label and named lines, driven through sysfs `pull` attributes (a simulated
 * external pull makes the kernel raise edge events). Needs root and CONFIG_GPIO_SIM; tests skip
 * when /sys/kernel/config/gpio-sim is absent.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = "/sys/kernel/config/gpio-sim";

export interface GpioSim {
  pull(line: number, pull: "pull-up" | "pull-down"): Promise<void>;
}

export async function withGpioSim(label: string, lines: string[], body: (sim: GpioSim) => Promise<void>) {
  const dev = join(ROOT, `qubes-air-${process.pid}`);
  const bank = join(dev, "bank0");
  mkdirSync(dev);
  mkdirSync(bank);
  writeFileSync(join(bank, "label"), label);
  writeFileSync(join(bank, "num_lines"), String(lines.length));
  lines.forEach((name, i) => {
    mkdirSync(join(bank, `line${i}`));
    writeFileSync(join(bank, `line${i}`, "name"), name);
  });
  writeFileSync(join(dev, "live"), "1");
  try {
    const devName = readFileSync(join(dev, "dev_name"), "utf8").trim();
    const chipName = readFileSync(join(bank, "chip_name"), "utf8").trim();
    const sysfs = join("/sys/devices/platform", devName, chipName);
    await body({
      async pull(line, pull) {
        writeFileSync(join(sysfs, `sim_gpio${line}`, "pull"), pull);
      },
    });
  } finally {
    writeFileSync(join(dev, "live"), "0");
    for (let i = 0; i < lines.length; i++) rmdirSync(join(bank, `line${i}`));
    rmdirSync(bank);
    rmdirSync(dev);
  }
}

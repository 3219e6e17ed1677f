/** The benchmark's playbook: 30 tasks in 3 plays of 10, using every module but apt installs. */
export function thirtyTaskPlaybook(): string {
  const plays: string[] = [];
  for (let p = 1; p <= 3; p++) {
    const tasks: string[] = [
      `    - name: directory ${p}\n      file: { path: /etc/bench-${p}, state: directory, mode: "0755" }`,
      `    - name: packages present ${p}\n      apt: { packages: [openssh-server, sudo] }`,
      `    - name: sshd running ${p}\n      service: { name: ssh, state: started, enabled: true }`,
      `    - name: marker ${p}\n      command: { cmd: "touch /etc/bench-${p}/marker", creates: /etc/bench-${p}/marker }`,
    ];
    for (let t = tasks.length + 1; t <= 10; t++) {
      tasks.push(
        t % 2
          ? `    - name: file ${p}.${t}\n      file: { path: /etc/bench-${p}/f${t}.conf, content: "play = ${p}\\ntask = ${t}\\nhost = {{ host.name }}\\n", mode: "0644" }`
          : `    - name: template ${p}.${t}\n      template: { src: bench.conf.hbs, path: /etc/bench-${p}/t${t}.conf, mode: "0640" }`,
      );
    }
    plays.push(`- name: Bench play ${p}\n  hosts: all\n  tasks:\n${tasks.join("\n")}`);
  }
  return `${plays.join("\n\n")}\n`;
}

// The alarm tone, made with the Web Audio API (no audio file): two short high-low beeps.
let context = null;
let played = 0;

export function tonesPlayed() { return played; }

// Browsers start audio only after a user gesture: call this from a click to unlock it.
export function unlockSound() {
  context ??= new AudioContext();
  return context.resume();
}

export function alarmTone() {
  played += 1;
  document.body.dataset.tones = String(played);
  try {
    context ??= new AudioContext();
    const start = context.currentTime + 0.02;
    for (const [offset, freq] of [[0, 880], [0.25, 660], [0.5, 880], [0.75, 660]]) {
      const osc = context.createOscillator();
      const gain = context.createGain();
      osc.type = "square";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.22);
      osc.connect(gain).connect(context.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.24);
    }
  } catch (err) {
    console.warn("alarm tone unavailable:", err);
  }
}

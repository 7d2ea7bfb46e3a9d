// Price steps per market, as the server's market grids define them (KRX's bands, cents for US
// listings, Upbit's KRW units), so a level picked on the chart is a price that can trade.

function krx(price: number): number {
  const bands: [number, number][] = [
    [2_000, 1],
    [5_000, 5],
    [20_000, 10],
    [50_000, 50],
    [200_000, 100],
    [500_000, 500],
  ];
  return bands.find(([upper]) => price < upper)?.[1] ?? 1_000;
}

function upbit(price: number): number {
  const bands: [number, number][] = [
    [2_000_000, 1_000],
    [1_000_000, 500],
    [500_000, 100],
    [100_000, 50],
    [10_000, 10],
    [1_000, 1],
    [100, 0.1],
    [10, 0.01],
    [1, 0.001],
    [0.1, 0.0001],
    [0.01, 0.00001],
    [0.001, 0.000001],
    [0.0001, 0.0000001],
  ];
  return bands.find(([lower]) => price >= lower)?.[1] ?? 0.00000001;
}

export function priceUnit(market: string, price: number): number {
  if (market === 'KRX') return krx(price);
  if (market === 'UPBIT') return upbit(price);
  return price >= 1 ? 0.01 : 0.0001;
}

export function decimalsOf(unit: number): number {
  return unit >= 1 ? 0 : Math.round(-Math.log10(unit));
}

/** `price` rounded to the nearest step of its market, as a decimal string. */
export function onGrid(market: string, price: number): string {
  const unit = priceUnit(market, price);
  return (Math.round(price / unit) * unit).toFixed(decimalsOf(unit));
}

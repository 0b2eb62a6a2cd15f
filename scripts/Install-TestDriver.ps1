#Requires -Version 5.1
<#
.SYNOPSIS
    Creates and starts the TestDrv kernel service for TestDriver.sys, then checks that C:\Temp stays empty.

.DESCRIPTION
    The seed's two steps, made repeatable:

        sc.exe create TestDrv type= kernel binPath= <full path of TestDriver.sys>
        sc.exe start TestDrv

    What it does when TestDrv already exists, and what each sc.exe error means:
    docs\windows.md, section 3. After the start it waits -WaitSeconds and counts the files in
    C:\Temp, which must stay empty. Never "sc stop" the driver afterwards: see
    scripts\Remove-TestDriver.ps1, and reboot instead.

    Assumptions (not verified here, no Windows was available when this was written):
      - sc.exe sets its exit code to the Win32 error of the failed call.
      - With test signing on, the kernel loads any test-signed driver, whatever certificate
        signed it, so 577 (ERROR_INVALID_IMAGE_HASH) means the .sys has no usable signature
        (the Linux build, or a file changed after signing) or test mode is off in this boot.
      - Win32_SystemDriver reports State 'Running' / 'Stopped' and ServiceType
        'Kernel Driver' as fixed strings on every display language.

.PARAMETER DriverPath
    Path of TestDriver.sys. Default: the newest TestDriver.sys of a package build of cargo wdk
    or cargo make in the repository (Find-TestDriverBuild), else out\TestDriver.sys (the Linux
    build, unsigned: it will not load without a signature).

.PARAMETER ServiceName
    Service name. Default: TestDrv (as in the seed).

.PARAMETER WaitSeconds
    Seconds to wait after the start before looking into C:\Temp. Default: 5.

.PARAMETER WatchFolder
    Folder the driver would write to. Default: C:\Temp.

.PARAMETER NoStart
    Create or fix the service, do not start it.

.PARAMETER ImportCertificate
    Import the .cer found next to the driver into LocalMachine\Root and TrustedPublisher first.
    Not needed in test mode: it only makes the file's signature Valid, and the machine trust
    that certificate for everything it signs.

.PARAMETER Force
    Continue even when test signing is not active (the start will then fail with error 577).

.EXAMPLE
    PS C:\> .\scripts\Install-TestDriver.ps1 -WhatIf
    Shows the sc.exe commands it would run.

.EXAMPLE
    PS C:\> .\scripts\Install-TestDriver.ps1
    Creates TestDrv for the newest package build (cargo wdk or cargo make), starts it, checks C:\Temp.

.EXAMPLE
    PS C:\> .\scripts\Install-TestDriver.ps1 -DriverPath C:\Users\Admin\TestDriver\TestDriver.sys -WaitSeconds 10
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string]$DriverPath,

    [ValidatePattern('^[A-Za-z0-9_]+$')]
    [string]$ServiceName = 'TestDrv',

    [ValidateRange(0, 600)]
    [int]$WaitSeconds = 5,

    [string]$WatchFolder = 'C:\Temp',

    [switch]$NoStart,

    [switch]$ImportCertificate,

    [switch]$Force
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

function Resolve-DriverPath {
    param([string]$Path)
    if ($Path) {
        $given = Resolve-ExistingFile -Path $Path -Description 'Driver'
        Write-Host "Driver: $given (-DriverPath)"
        return $given
    }
    $root = Split-Path -Parent $PSScriptRoot
    $builds = @(Find-TestDriverBuild -RepositoryRoot $root -FileName 'TestDriver.sys')
    if ($builds.Count -gt 0) {
        $chosen = $builds[0]
        Write-Host "Driver: $($chosen.FullName) (written $($chosen.LastWriteTime): the newest of $($builds.Count) package build(s) of cargo wdk or cargo make)"
        foreach ($older in @($builds | Select-Object -Skip 1)) {
            Write-Host "        not used, older: $($older.FullName) (written $($older.LastWriteTime)); pass -DriverPath to choose it"
        }
        return $chosen.FullName
    }
    $linuxBuild = Join-Path -Path $root -ChildPath 'out\TestDriver.sys'
    if (Test-Path -LiteralPath $linuxBuild -PathType Leaf) {
        Write-Host "Driver: $linuxBuild (the Linux build: no cargo wdk or cargo make package build under target\)"
        return (Resolve-Path -LiteralPath $linuxBuild).ProviderPath
    }
    throw ("TestDriver.sys not found under $root. Build it first in the repository root: ""cargo wdk build " +
        '--profile release --target-platform windows" or "cargo make default --release" (both write ' +
        'target\release\TestDriver_package), or pass -DriverPath.')
}

# sc.exe with Arguments, its output shown; throws "<Label> failed with exit code N: <meaning>".
function Invoke-ScExe {
    param([string[]]$Arguments, [string]$Label)
    $result = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList $Arguments
    Write-NativeOutput $result
    if ($result.ExitCode -ne 0) {
        throw "$Label failed with exit code $($result.ExitCode): $(Get-StartErrorText $result.ExitCode)"
    }
}

function Get-StartErrorText {
    param([int]$Code)
    switch ($Code) {
        2 { return 'ERROR_FILE_NOT_FOUND: binPath points to a file that does not exist.' }
        5 { return 'ERROR_ACCESS_DENIED: run elevated.' }
        577 { return ('ERROR_INVALID_IMAGE_HASH: the kernel found no valid signature. In test mode any test ' +
                'signature is accepted, so either the .sys is not signed (the Linux build, or a file changed after ' +
                'signing: use the one in the package folder) or test signing is not on in this boot (reboot after bcdedit).') }
        1056 { return 'ERROR_SERVICE_ALREADY_RUNNING: the driver is already loaded.' }
        1058 { return 'ERROR_SERVICE_DISABLED: the service start type is disabled (sc.exe config TestDrv start= demand).' }
        1072 { return ('ERROR_SERVICE_MARKED_FOR_DELETE: the service is already marked for deletion (Remove-TestDriver.ps1 ' +
                'ran while the driver was loaded) and is gone at the reboot. Reboot, then run this again.') }
        1275 { return 'ERROR_DRIVER_BLOCKED: a policy blocks this driver (HVCI / vulnerable driver blocklist / WDAC).' }
        default { return "Win32 error $Code (see: net helpmsg $Code)." }
    }
}

Assert-Administrator

$driver = Resolve-DriverPath -Path $DriverPath

$signature = Get-AuthenticodeSignature -LiteralPath $driver
if ($signature.Status -eq 'NotSigned') {
    Write-Warning ('The driver has no signature: Windows will not load it even in test mode. ' +
        'Use the TestDriver.sys from the package folder, which cargo wdk build and cargo make sign.')
}
else {
    $signer = '(none)'
    if ($signature.SignerCertificate) {
        $signer = $signature.SignerCertificate.Subject
    }
    Write-Host "Signature: $($signature.Status), signer $signer (a test certificate is expected to be untrusted)."
}

if (-not (Test-TestSigningActive)) {
    $message = 'Test signing is not active in this boot. Run scripts\Initialize-TestVM.ps1 and reboot.'
    if ($Force) {
        Write-Warning $message
    }
    else {
        throw "$message (Use -Force to try anyway.)"
    }
}

if ($ImportCertificate) {
    $cer = Get-ChildItem -LiteralPath (Split-Path -Parent $driver) -Filter '*.cer' | Select-Object -First 1
    if (-not $cer) {
        throw "No .cer file next to $driver."
    }
    foreach ($store in @('Cert:\LocalMachine\Root', 'Cert:\LocalMachine\TrustedPublisher')) {
        if ($PSCmdlet.ShouldProcess($store, "Import-Certificate $($cer.FullName)")) {
            Import-Certificate -FilePath $cer.FullName -CertStoreLocation $store | Out-Null
            Write-Host "Certificate $($cer.Name) imported into $store."
        }
    }
}

# Create, or check, the service
$service = Get-DriverService -Name $ServiceName
if ($null -eq $service) {
    if ($PSCmdlet.ShouldProcess($ServiceName, "sc.exe create $ServiceName type= kernel binPath= $driver")) {
        Invoke-ScExe -Arguments @('create', $ServiceName, 'type=', 'kernel', 'binPath=', $driver) -Label 'sc.exe create'
        $service = Get-DriverService -Name $ServiceName
        if ($null -eq $service) {
            throw "sc.exe create reported success, but WMI (Win32_SystemDriver) does not list $ServiceName."
        }
    }
}
else {
    Write-Host "Service ${ServiceName}: exists, $($service.ServiceType), state $($service.State), file $($service.PathName)"
    if (-not $service.IsKernelDriver) {
        throw ("A service named $ServiceName exists but is not a kernel driver ($($service.ServiceType)). " +
            'It belongs to something else: choose another -ServiceName.')
    }
    if ($service.Path -ieq $driver) {
        Write-Host "Service ${ServiceName}: binPath already points to this driver."
    }
    elseif (-not $service.Stopped) {
        throw ("$ServiceName is loaded from $($service.Path), not from $driver. A loaded TestDriver cannot be " +
            'replaced while its threads are stuck: reboot (the service is demand-start, it stays stopped), then run this again.')
    }
    elseif ($PSCmdlet.ShouldProcess($ServiceName, "sc.exe config $ServiceName binPath= $driver")) {
        Write-Host "Service ${ServiceName}: binPath points to $($service.Path), changing it to $driver."
        Invoke-ScExe -Arguments @('config', $ServiceName, 'binPath=', $driver) -Label 'sc.exe config'
        $service = Get-DriverService -Name $ServiceName
    }
}

if ($NoStart) {
    Write-Host 'Not starting (-NoStart). Start it with: sc.exe start TestDrv'
    return
}
if ($null -eq $service) {
    # -WhatIf on a machine without the service
    Write-Host "What if: sc.exe start $ServiceName, then look into $WatchFolder after $WaitSeconds s."
    return
}

# Start
if ($service.Running) {
    Write-Host ("Service ${ServiceName}: already Running. Not starting it again: its two threads are already " +
        'blocked on the fast mutex. Checking the folder only.')
}
elseif ($PSCmdlet.ShouldProcess($ServiceName, "sc.exe start $ServiceName")) {
    Invoke-ScExe -Arguments @('start', $ServiceName) -Label "sc.exe start $ServiceName"
    # A driver's DriverEntry has returned by the time sc.exe start does; allow a moment for the state.
    # $state and $running: the last answer WMI gave (a lookup that finds nothing keeps them).
    $state = ''
    $running = $false
    foreach ($attempt in 1..10) {
        $current = Get-DriverService -Name $ServiceName
        if ($current) {
            $state = $current.State
            $running = $current.Running
        }
        if ($running) {
            break
        }
        Start-Sleep -Milliseconds 500
    }
    if (-not $running) {
        Write-Warning "After sc.exe start, WMI reports $ServiceName as '$state', not 'Running': check the output above."
    }
}
else {
    return
}

# C:\Temp must stay empty
if (-not (Test-Path -LiteralPath $WatchFolder -PathType Container)) {
    Write-Warning "$WatchFolder does not exist: the driver could not have written there anyway. Run scripts\Initialize-TestVM.ps1."
    return
}
Write-Host "Waiting $WaitSeconds s, then counting the files in $WatchFolder ..."
Start-Sleep -Seconds $WaitSeconds
$files = @(Get-ChildItem -LiteralPath $WatchFolder -File -Force)
if ($files.Count -eq 0) {
    Write-Host ("$WatchFolder is empty after $WaitSeconds s, as expected: FileCreationThread is blocked in its " +
        'second ExAcquireFastMutex and never reaches the loop that creates file_N.txt. ' +
        'FileMoveThread waits behind it. Next: scripts\New-LiveKernelDump.ps1.')
}
else {
    Write-Warning ("$WatchFolder holds $($files.Count) file(s) after $WaitSeconds s, e.g. $($files[0].Name). " +
        'That is not the deadlock the demo expects: did the folder hold files before, or does this build not acquire the mutex twice?')
}
[pscustomobject]@{
    Service       = $ServiceName
    Driver        = $driver
    WatchFolder   = $WatchFolder
    FilesAfterRun = $files.Count
    Deadlocked    = ($files.Count -eq 0)
}
